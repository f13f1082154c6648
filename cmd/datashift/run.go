package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/partitioner"
)

// defaultStateDir is the per-user folder where standalone runs keep their
// state, one embedded store file per job, found by the job's name: a job
// started from any directory continues its own run, and two jobs never
// share (or wait for) a file. $XDG_STATE_HOME/datashift, or
// ~/.local/state/datashift.
func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "datashift")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "datashift")
	}
	return filepath.Join(os.TempDir(), "datashift-state")
}

func runCmd() *cobra.Command {
	var (
		stateDir     string
		quiet        bool
		restart      bool
		parallelism  int
		callbackWait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run JOB.yaml",
		Short: "Run one job on this process; run it again after a crash to resume",
		Long: `Plans the job's source into partitions, runs them in parallel on this process
and prints a summary. The job's runs and checkpoints are kept in a file named
after the job in the state folder (--state); if the run is interrupted or the
process is killed, the same job run again, from any directory, continues from
what the sink committed, with no row lost or written twice.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job, err := loadJob(cmd, args[0], parallelism)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := engine.Check(ctx, job); err != nil {
				return err
			}
			state, closeState, err := openJobState(stateDir, job.Name)
			if err != nil {
				return err
			}
			defer closeState()
			_, err = runJob(ctx, job, state, cmd.ErrOrStderr(), quiet, restart, callbackWait)
			return err
		},
	}
	cmd.Flags().StringVar(&stateDir, "state", envOr("DATASHIFT_STATE", defaultStateDir()), "folder of the jobs' state files (one per job, by name)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bars")
	cmd.Flags().IntVar(&parallelism, "parallelism", 0, fmt.Sprintf("partitions at once, 1 to %d (default: the job's parallelism)", engine.MaxParallelism))
	cmd.Flags().DurationVar(&callbackWait, "callback-wait", 15*time.Second, "how long to wait, once the run is over, for its callbacks to be posted; what is not is posted by the job's next run")
	cmd.Flags().BoolVar(&restart, "restart", false, "abandon the job's interrupted or failed run (its rows stay in the sink) and start a new one")
	return cmd
}

// loadJob reads a job spec, with the --parallelism flag, if given, in
// place of the spec's.
func loadJob(cmd *cobra.Command, path string, parallelism int) (*engine.Job, error) {
	job, err := engine.LoadJob(path)
	if err != nil {
		return nil, err
	}
	if cmd.Flags().Changed("parallelism") {
		if err := engine.CheckParallelism(parallelism); err != nil {
			return nil, &engine.SpecError{Job: job.Name, Field: "--parallelism", Reason: err.Error()}
		}
		job.Parallelism = parallelism
	}
	return job, nil
}

// runJob runs job with progress bars on w and prints its summary.
// It runs the job on a cluster of one over the job's state: the same
// leader and worker as `datashift node`.
func runJob(ctx context.Context, job *engine.Job, state store.Store, w io.Writer, quiet, restart bool, callbackWait time.Duration) (*engine.RunRecord, error) {
	setMemoryLimit(memoryLimitBase, job.Parallelism)
	ui := newProgressUI(w, quiet)
	start := time.Now()
	run, err := coordinator.RunJob(ctx, state, job, coordinator.RunOptions{Restart: restart, Progress: ui.Update, OnPlan: ui.Plan, Log: warnings(ui), CallbackWait: callbackWait})
	ui.Wait()
	if run == nil {
		return nil, err
	}
	elapsed := time.Since(start)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(w, "%s: interrupted after %s; run the same command again to resume run %s\n", job.Name, elapsed.Round(time.Millisecond), run.ID)
		return run, err
	}
	fmt.Fprintf(w, "%s: run %s %s: %d rows, %s in %s (%s rows/s), %d partitions (%s)\n",
		job.Name, run.ID, run.State, run.Rows, humanBytes(run.Bytes), elapsed.Round(time.Millisecond),
		humanCount(float64(run.Rows-ui.Resumed())/elapsed.Seconds()), ui.Partitions(), run.Scheme)
	fmt.Fprintf(w, "%s: %s\n", job.Name, planAndCopy(run, start, elapsed))
	if ui.Resumed() > 0 {
		fmt.Fprintf(w, "%s: %d of the rows were copied before the run was interrupted\n", job.Name, ui.Resumed())
	}
	if run.State == engine.RunFailed {
		fmt.Fprintf(w, "%s: fix the cause and run the same command again to continue run %s from its checkpoints (or --restart to start over)\n", job.Name, run.ID)
	}
	if run.BadRows > 0 {
		fmt.Fprintf(w, "%s: %d bad rows set aside", job.Name, run.BadRows)
		if job.BadRows.RejectFile != "" {
			fmt.Fprintf(w, " in %s", job.BadRows.RejectFile)
		}
		fmt.Fprintln(w)
	}
	return run, err
}

// planAndCopy splits a run's time into planning and the rest (preparing
// the sink, placing and copying the partitions), so a slow plan shows
// instead of hiding in the throughput. A run planned before this process
// started (one it resumed) says so: its planning is not in elapsed.
func planAndCopy(run *engine.RunRecord, start time.Time, elapsed time.Duration) string {
	plan := run.PlanDuration.Round(time.Millisecond)
	if run.Started.Before(start) {
		return fmt.Sprintf("copied in %s; the run was planned before (in %s)", elapsed.Round(time.Millisecond), plan)
	}
	copied := max(0, elapsed-run.PlanDuration).Round(time.Millisecond)
	share := 0.0
	if elapsed > 0 {
		share = 100 * run.PlanDuration.Seconds() / elapsed.Seconds()
	}
	return fmt.Sprintf("planned in %s (%.1f%% of the run), copied in %s", plan, share, copied)
}

// openJobState opens the job's state file in dir (creating the folder).
// The file is locked while open, so the same job started twice waits for
// nothing: the second is refused.
func openJobState(dir, job string) (store.Store, func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state folder: %w", err)
	}
	path := filepath.Join(dir, job+".db")
	db, err := embedded.Open(path)
	if errors.Is(err, embedded.ErrInUse) {
		return nil, nil, fmt.Errorf("job %q is running in another process (its state %s is in use)", job, path)
	}
	if err != nil {
		return nil, nil, err
	}
	s, err := db.Session()
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return s, func() { s.Close(); db.Close() }, nil
}

func planCmd() *cobra.Command {
	var (
		asJSON   bool
		stateDir string
	)
	cmd := &cobra.Command{
		Use:   "plan JOB.yaml",
		Short: "Print the partitions a run of the job would have, with bounds and estimated rows",
		Long: `Plans the job as its next run would, storing nothing: the partitions with
their bounds and estimated rows, and for an incremental job the window of
cursor values the run would copy, from the high-water mark in the job's state
file (--state). A job with an unfinished run shows that run, which the next
run continues.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job, err := engine.LoadJob(args[0])
			if err != nil {
				return err
			}
			start := time.Now()
			var st engine.State
			// A job that never ran has no state file: plan it without
			// creating one.
			if _, err := os.Stat(filepath.Join(stateDir, job.Name+".db")); err == nil {
				s, closeState, err := openJobState(stateDir, job.Name)
				if err != nil {
					return err
				}
				defer closeState()
				st = &coordinator.RunState{S: s}
			}
			run, plan, continued, err := engine.Plan(cmd.Context(), job, st)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				body := planBody{Job: job.Name, Plan: plan, Window: windowOf(job, run)}
				if continued {
					body.Continues = run.ID
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(body)
			}
			var total int64
			for _, p := range plan.Partitions {
				total += p.EstRows
			}
			if continued {
				fmt.Fprintf(out, "job %s: run %s is unfinished; the next run continues it\n", job.Name, run.ID)
			}
			fmt.Fprintf(out, "job %s: %d partitions, scheme %s, ~%d rows, planned in %s\n%s\n",
				job.Name, len(plan.Partitions), plan.Scheme, total, time.Since(start).Round(time.Millisecond), plan.Reason)
			if w := engine.DescribeWindow(job, run); w != "" {
				fmt.Fprintf(out, "%s\n", w)
			}
			for _, p := range plan.Partitions {
				fmt.Fprintf(out, "  %-6s %-60s ~%d rows\n", p.ID, p.Range, p.EstRows)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().StringVar(&stateDir, "state", envOr("DATASHIFT_STATE", defaultStateDir()), "folder of the jobs' state files, where the incremental high-water mark is")
	return cmd
}

func checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check JOB.yaml",
		Short: "Validate a job spec and reach its source and sink, without copying",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job, err := engine.LoadJob(args[0])
			if err != nil {
				return err
			}
			if err := engine.Check(cmd.Context(), job); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s is valid\n%s\n", job.Name, job.JSON())
			return nil
		},
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// orEnv is a flag's value, or the environment variable's when the flag
// was left empty: for secrets, which a flag default would show in --help.
func orEnv(flag, name string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(name)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanCount(f float64) string {
	switch {
	case f >= 1e6:
		return fmt.Sprintf("%.2fM", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.1fk", f/1e3)
	}
	return fmt.Sprintf("%.0f", f)
}

// planBody is what plan --json prints: the plan, and what the text shows
// beside it.
type planBody struct {
	Job string `json:"job"`
	// Continues is the unfinished run the next run continues.
	Continues string `json:"continues_run,omitempty"`
	partitioner.Plan
	Window *windowBody `json:"window,omitempty"`
}

// windowBody is the incremental window of a run (see engine.RunRecord):
// rows with From <= cursor <= UpTo, less the keys SkipAtFrom, and at UpTo
// only the keys OnlyAtUpTo when it is set (sinks that do not upsert).
type windowBody struct {
	Cursor      string           `json:"cursor"`
	From        connectors.Key   `json:"from,omitempty"`
	UpTo        connectors.Key   `json:"up_to,omitempty"`
	SkipAtFrom  []connectors.Key `json:"skip_at_from,omitempty"`
	OnlyAtUpTo  []connectors.Key `json:"only_at_up_to,omitempty"`
	Lookback    string           `json:"lookback,omitempty"`
	Description string           `json:"description"`
}

func windowOf(job *engine.Job, run *engine.RunRecord) *windowBody {
	if job.Incremental == nil {
		return nil
	}
	return &windowBody{
		Cursor: job.Incremental.Cursor, From: run.CursorFrom, UpTo: run.CursorUpTo,
		SkipAtFrom: run.CursorSkip, OnlyAtUpTo: run.CursorKeys, Lookback: job.Incremental.Lookback,
		Description: engine.DescribeWindow(job, run),
	}
}
