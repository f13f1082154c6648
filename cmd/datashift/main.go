// Command datashift copies tables between data stores in parallel
// partitions, on one process or across a cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	_ "github.com/datashift/datashift/connectors/all"
	"github.com/datashift/datashift/engine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "datashift:", err)
		var se engine.SpecErrors
		if errors.As(err, &se) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "datashift",
		Short:         "Copy tables between data stores, in parallel and on a schedule",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCmd(), planCmd(), checkCmd(), demoCmd())
	return root
}
