// Command datashift copies tables between data stores in parallel
// partitions, on one process or across a cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	_ "github.com/datashift/datashift/connectors/all"
	"github.com/datashift/datashift/engine"
)

// The Go heap's soft limit, unless GOMEMLIMIT says otherwise, is a base
// plus a share for each partition the process runs at once. Each partition
// bounds what it holds (its batches in flight, its sink's buffers: at most
// about 20 MB, a Parquet writer's row group), so the limit keeps garbage
// from piling up above that and a run's RSS stays flat whatever the table
// size; and it grows with the partitions so that many of them do not drive
// the collector to run without end. Measured on PostgreSQL→Parquet at 10M
// rows and 2 partitions: 72 MiB gave 112 MiB RSS for 2% more wall time,
// 100 MiB gave 140 MiB.
// A node's base is larger: as leader it also holds every job, schedule and
// run of the cluster.
const (
	memoryLimitBase         = 32 << 20
	nodeMemoryLimitBase     = 128 << 20
	memoryLimitPerPartition = 20 << 20
)

// setMemoryLimit sets the heap's soft limit for a process of base running
// partitions at once, unless the user set GOMEMLIMIT.
func setMemoryLimit(base int64, partitions int) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(base + int64(max(partitions, 1))*memoryLimitPerPartition)
}

func main() {
	setMemoryLimit(memoryLimitBase, 2) // until a command knows its partitions
	os.Exit(run())
}

// run is main's body, so that its deferred calls happen before the exit.
func run() int {
	if dir := os.Getenv("DATASHIFT_PROFILE"); dir != "" {
		stopProfiles, err := startProfiles(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "datashift:", err)
			return 1
		}
		defer stopProfiles()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "datashift:", err)
		return exitCode(err)
	}
	return 0
}

// exitCode is 2 for a job refused before anything ran (its spec, or what
// check found in its stores: errors naming a field), 1 for anything else,
// a sink that verify found different from its source included. The
// commands that talk to a node have their own (exitCodeOf, exitCodesHelp).
func exitCode(err error) int {
	if code, ok := exitCodeOf(err); ok {
		return code
	}
	var se *engine.SpecError
	if errors.As(err, &se) {
		return 2
	}
	return 1
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "datashift",
		Short:         "Copy tables between data stores, in parallel and on a schedule",
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCmd(), planCmd(), checkCmd(), verifyCmd(), demoCmd(), nodeCmd())
	root.AddCommand(clusterCmds()...)
	return root
}
