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

// defaultMemoryLimit is the Go heap's soft limit unless GOMEMLIMIT says
// otherwise: the batches in flight are bounded, and this keeps garbage from
// piling up above them, so a run's RSS stays flat whatever the table size.
const defaultMemoryLimit = 100 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "datashift:", err)
		os.Exit(exitCode(err))
	}
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
