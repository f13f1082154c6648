package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/datashift/datashift/engine"
)

func verifyCmd() *cobra.Command {
	var (
		asJSON      bool
		parallelism int
	)
	cmd := &cobra.Command{
		Use:   "verify JOB.yaml",
		Short: "Compare the job's sink with its source, partition by partition, and name the partitions that differ",
		Long: `Plans the job's source as a run would and, for each partition, counts and
checksums the range in the source and the same key range in the sink (read back
as a source of its type), in parallel. It writes nothing. Exit status: 0 when
every partition matches, 1 when any differs, 2 when the job is refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job, err := loadJob(cmd, args[0], parallelism)
			if err != nil {
				return err
			}
			setMemoryLimit(memoryLimitBase, job.Parallelism)
			v, err := engine.Verify(cmd.Context(), job)
			if v == nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(v); jerr != nil {
					return jerr
				}
				return err
			}
			fmt.Fprintf(out, "job %s: %d partitions, scheme %s, parallelism %d\n%s\n", job.Name, len(v.Partitions), v.Scheme, job.Parallelism, v.Reason)
			for _, p := range v.Differing() {
				fmt.Fprintf(out, "  %-6s %-60s differs: source %v, sink %v\n", p.ID, p.Range, p.Source, p.Sink)
			}
			src, sink := v.Totals()
			verdict := "the sink equals the source"
			if d := v.Differing(); len(d) > 0 {
				verdict = fmt.Sprintf("%d of %d partitions differ", len(d), len(v.Partitions))
			}
			fmt.Fprintf(out, "job %s: %s: %d partitions checked, %d source rows, %d sink rows, verified in %s\n",
				job.Name, verdict, len(v.Partitions), src, sink, time.Duration(v.Duration).Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the comparison as JSON")
	cmd.Flags().IntVar(&parallelism, "parallelism", 0, fmt.Sprintf("partitions at once, 1 to %d (default: the job's parallelism)", engine.MaxParallelism))
	return cmd
}
