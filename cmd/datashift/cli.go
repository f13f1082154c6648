package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/engine"
)

// exitCodesHelp is the contract a script may rely on, shown in the help of
// every command that talks to a node.
const exitCodesHelp = `
Exit codes: 0 done; 1 the node failed, could not be reached, or the watched
run did not succeed; 2 the request was refused as a mistake (a bad spec or
config, a body over 1 MiB, bad arguments); 3 no such job or run; 4 the node
needs a token (--token / DATASHIFT_TOKEN) for changes; 5 a conflict (a job
other jobs run after cannot be deleted).`

// watchEvery is how often --watch asks the node about the run.
const watchEvery = 500 * time.Millisecond

// cliError is a failure the command finds itself, with the exit code it
// stands for (see exitCode).
type cliError struct {
	msg  string
	code int
}

func (e *cliError) Error() string { return e.msg }

// usageErrorf is the user's mistake, found before asking the node: exit 2.
func usageErrorf(format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...), code: 2}
}

// exitCodeOf is the exit code of an error of a command that talks to a
// node, and whether it is one.
func exitCodeOf(err error) (int, bool) {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code, true
	}
	var se *serverError
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return 2, true
		case http.StatusNotFound:
			return 3, true
		case http.StatusUnauthorized:
			return 4, true
		case http.StatusConflict:
			return 5, true
		}
		return 1, true
	}
	return 0, false
}

// remote holds the flags every command talking to a node has.
type remote struct {
	server, token, output string
}

func (r *remote) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&r.server, "server", "", "the node's API, any node of the cluster (default $DATASHIFT_SERVER, or "+defaultServer+")")
	f.StringVar(&r.token, "token", "", "bearer token for changes, when the node has one (default $DATASHIFT_TOKEN)")
	f.StringVarP(&r.output, "output", "o", "table", "table for people, json for scripts (the node's answer as it is)")
	flagsAreUsage(cmd)
}

// flagsAreUsage makes a bad flag of cmd (and of its subcommands) the
// user's mistake: exit 2.
func flagsAreUsage(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see %s --help)", err, c.CommandPath())
	})
}

// client reads the flags, and the environment for what they leave out,
// when the command runs: a token never shows as a flag default.
func (r *remote) client() (*apiClient, error) {
	if r.output != "table" && r.output != "json" {
		return nil, usageErrorf("-o %q: want table or json", r.output)
	}
	server := orEnv(r.server, "DATASHIFT_SERVER")
	if server == "" {
		server = defaultServer
	}
	return newAPIClient(server, orEnv(r.token, "DATASHIFT_TOKEN"))
}

func (r *remote) json() bool { return r.output == "json" }

// nArgs checks a command's arguments: between min and max (max < 0: no
// limit), a mistake of the user's otherwise.
func nArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return usageErrorf("usage: datashift %s (got %d arguments)", cmd.Use, len(args))
		}
		return nil
	}
}

// clusterCmds are the commands that operate a cluster through a node's API.
func clusterCmds() []*cobra.Command {
	return []*cobra.Command{submitCmd(), jobsCmd(), statusCmd(), triggerCmd(), pauseCmd(true), pauseCmd(false),
		deleteCmd(), nodesCmd(), configCmd()}
}

// remoteCmd is a command talking to a node, its flags added.
func remoteCmd(r *remote, use, short, long string, args cobra.PositionalArgs,
	run func(ctx context.Context, c *apiClient, cmd *cobra.Command, args []string) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  strings.TrimSpace(long) + "\n" + exitCodesHelp,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			return run(cmd.Context(), c, cmd, args)
		},
	}
	r.addFlags(cmd)
	return cmd
}

// printJSON prints an answer of the node, indented.
func printJSON(w io.Writer, data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(data), "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// when is a time as a table shows it: local, to the second, with the zone
// (the node and the reader may be in different ones).
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readSpec reads a file, or standard input for "-".
func readSpec(cmd *cobra.Command, path string) ([]byte, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(cmd.InOrStdin())
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return data, nil
}

func submitCmd() *cobra.Command {
	r := &remote{}
	return remoteCmd(r, "submit JOB.yaml", "Submit a job to the cluster, or update it if its name is taken",
		`Sends the job spec (YAML or JSON; - for standard input) to the node, which
checks it (fields, then its source and sink) and files it under a node of the
cluster. A job of that name already filed is updated with the spec instead.`,
		nArgs(1, 1), func(ctx context.Context, c *apiClient, cmd *cobra.Command, args []string) error {
			spec, err := readSpec(cmd, args[0])
			if err != nil {
				return err
			}
			var got jobBody
			verb := "submitted"
			raw, err := c.send(ctx, http.MethodPost, "/api/jobs", spec, &got)
			var se *serverError
			if errors.As(err, &se) && se.Status == http.StatusConflict {
				if name := specName(spec); name != "" {
					verb = "updated"
					raw, err = c.send(ctx, http.MethodPut, "/api/jobs/"+pathEscape(name), spec, &got)
				}
			}
			if err != nil {
				return err
			}
			if r.json() {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s job %s (owner %s)\n", verb, got.Name, got.Owner)
			return nil
		})
}

// specName is the name a job spec gives its job ("" if it cannot be read:
// then the node's refusal stands).
func specName(spec []byte) string {
	var s struct {
		Name string `yaml:"name"`
	}
	if yaml.Unmarshal(spec, &s) != nil {
		return ""
	}
	return s.Name
}

func jobsCmd() *cobra.Command {
	r := &remote{}
	return remoteCmd(r, "jobs", "List the cluster's jobs with their schedules and newest runs", "Lists the jobs filed in the cluster.",
		nArgs(0, 0), func(ctx context.Context, c *apiClient, cmd *cobra.Command, _ []string) error {
			var list []jobBody
			raw, err := c.get(ctx, "/api/jobs", &list)
			if err != nil {
				return err
			}
			if r.json() {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tSCHEDULE\tNEXT FIRE\tPAUSED\tLAST RUN")
			for _, j := range list {
				next, paused := "-", "no"
				if s := j.Schedule; s != nil {
					if len(s.NextFires) > 0 {
						next = when(s.NextFires[0])
					}
					if s.Paused {
						paused = "yes"
					}
				}
				last := "-"
				if lr := j.LastRun; lr != nil {
					last = fmt.Sprintf("%s %s %s", lr.ID, lr.State, when(lr.Started))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.Name, scheduleOf(j.Spec), next, paused, last)
			}
			return tw.Flush()
		})
}

// scheduleOf says when a job fires: its cron, its upstreams, or none (it
// runs when triggered).
func scheduleOf(job *engine.Job) string {
	if job == nil || job.Schedule == nil {
		return "none"
	}
	var parts []string
	if s := job.Schedule; s.Cron != "" {
		c := "cron " + s.Cron
		if s.Timezone != "" {
			c += " (" + s.Timezone + ")"
		}
		parts = append(parts, c)
	}
	if len(job.Schedule.After) > 0 {
		parts = append(parts, "after "+strings.Join(job.Schedule.After, ","))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func statusCmd() *cobra.Command {
	r := &remote{}
	var watch bool
	cmd := remoteCmd(r, "status JOB [RUN]", "Show a run of a job (the newest without RUN) and its partitions",
		`Shows the run, then each partition: its range, state, the node working on
it, its attempts, the rows it copied and why it failed or waits. With --watch,
follows the run to its end with a progress bar per partition, then prints its
summary; the exit code is then 1 unless the run succeeded.`,
		nArgs(1, 2), func(ctx context.Context, c *apiClient, cmd *cobra.Command, args []string) error {
			job := args[0]
			var run string
			if len(args) == 2 {
				run = args[1]
			} else {
				rec, err := newestRun(ctx, c, job)
				if err != nil {
					return err
				}
				run = rec.ID
			}
			if watch {
				return watchRun(ctx, c, r.json(), job, run, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			var rb runBody
			raw, err := c.get(ctx, runPathOf(job, run), &rb)
			if err != nil {
				return err
			}
			if r.json() {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return printRun(cmd.OutOrStdout(), &rb)
		})
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the run to its end with a progress bar per partition")
	return cmd
}

func runPathOf(job, run string) string { return "/api/runs/" + pathEscape(job) + "/" + pathEscape(run) }

func runsPathOf(job string, limit int) string {
	return fmt.Sprintf("/api/jobs/%s/runs?limit=%d", pathEscape(job), limit)
}

func newestRun(ctx context.Context, c *apiClient, job string) (engine.RunRecord, error) {
	var runs []engine.RunRecord
	if _, err := c.get(ctx, runsPathOf(job, 1), &runs); err != nil {
		return engine.RunRecord{}, err
	}
	if len(runs) == 0 {
		return engine.RunRecord{}, &cliError{code: 3, msg: fmt.Sprintf("job %q has not run yet (datashift trigger %s starts a run)", job, job)}
	}
	return runs[0], nil
}

// runDuration is how long a run took, or has taken so far.
func runDuration(run *engine.RunRecord) time.Duration {
	end := run.Finished
	if end.IsZero() {
		end = time.Now()
	}
	d := end.Sub(run.Started)
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

func printRun(w io.Writer, rb *runBody) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "job\t%s\nrun\t%s\nstate\t%s\nstarted\t%s\nduration\t%s\nrows\t%d\n",
		rb.Job, rb.ID, rb.State, when(rb.Started), runDuration(&rb.RunRecord), rb.Rows)
	if rb.Trigger != "" {
		fmt.Fprintf(tw, "trigger\t%s\n", rb.Trigger)
	}
	if rb.Error != "" {
		fmt.Fprintf(tw, "error\t%s\n", rb.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rb.Partitions) == 0 {
		if rb.State != engine.RunRunning {
			fmt.Fprintln(w, "(no partitions kept for this run: without --redis the nodes keep those of each job's newest 10 runs)")
		}
		return nil
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "ID\tRANGE\tSTATE\tWORKER\tATTEMPTS\tROWS\tERROR")
	for _, p := range rb.Partitions {
		rows := strconv.FormatInt(p.Checkpoint.Rows, 10)
		if p.State != engine.Done && p.EstRows > 0 {
			rows += fmt.Sprintf(" of ~%d", p.EstRows)
		}
		note := p.Error
		if note == "" && p.Waiting != "" {
			note = "waits: " + p.Waiting
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.ID, p.Range, p.State, orDash(p.Owner), p.Attempts, rows, orDash(note))
	}
	return tw.Flush()
}

// watchRun follows a run to its end: bars (or lines, off a terminal) on
// errw while it goes, then the summary on out, or with asJSON the run's
// last answer. A run that did not succeed is an error (exit 1).
func watchRun(ctx context.Context, c *apiClient, asJSON bool, job, run string, out, errw io.Writer) error {
	var (
		ui    *progressUI
		seen  = map[string]partitionBody{}
		parts int
	)
	stopBars := func() {
		if ui != nil {
			ui.Wait()
			ui = nil
		}
	}
	defer stopBars()
	for {
		var rb runBody
		raw, err := c.get(ctx, runPathOf(job, run), &rb)
		if err != nil {
			if ctx.Err() != nil {
				return &cliError{code: 1, msg: fmt.Sprintf("stopped watching run %s of job %s; it goes on (datashift status %s %s --watch)", run, job, job, run)}
			}
			return err
		}
		if len(rb.Partitions) > 0 {
			parts = len(rb.Partitions)
		}
		if !asJSON {
			ui = showProgress(ui, errw, &rb, seen)
		}
		if rb.State != engine.RunRunning {
			if rb.State == engine.RunSucceeded && ui != nil {
				// Without a history keeping them, a run's partitions go
				// with its end: those last seen short of done are done.
				for id, p := range seen {
					if p.State != engine.Done {
						ui.Update(engine.Progress{Job: job, Run: run, Partition: id, State: engine.Done, Rows: p.Checkpoint.Rows})
					}
				}
			}
			stopBars()
			if asJSON {
				if err := printJSON(out, raw); err != nil {
					return err
				}
			} else {
				printSummary(out, &rb.RunRecord, parts)
			}
			if rb.State != engine.RunSucceeded {
				msg := fmt.Sprintf("run %s of job %s %s", run, job, rb.State)
				if rb.Error != "" && asJSON { // else the summary said why
					msg += ": " + rb.Error
				}
				return &cliError{code: 1, msg: msg}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			stopBars()
			return &cliError{code: 1, msg: fmt.Sprintf("stopped watching run %s of job %s; it goes on (datashift status %s %s --watch)", run, job, job, run)}
		case <-time.After(watchEvery):
		}
	}
}

// showProgress draws what changed in the run since the last answer (seen,
// updated here) on the progress bars as `datashift run` draws its own,
// creating them on the first answer with partitions.
func showProgress(ui *progressUI, w io.Writer, rb *runBody, seen map[string]partitionBody) *progressUI {
	if len(rb.Partitions) == 0 {
		return ui
	}
	if ui == nil {
		ui = newProgressUI(w, false)
		recs := make([]engine.PartitionRecord, 0, len(rb.Partitions))
		for _, p := range rb.Partitions {
			// The rows copied before the watch began are not the
			// watch's to rate; Started stays unset, since this is not a
			// resumed run's first sight of its checkpoints.
			recs = append(recs, engine.PartitionRecord{ID: p.ID, EstRows: p.EstRows, State: p.State, Checkpoint: engine.Checkpoint{Rows: p.Checkpoint.Rows}})
			seen[p.ID] = p
		}
		ui.Plan(&rb.RunRecord, recs)
		return ui
	}
	for _, p := range rb.Partitions {
		prev, ok := seen[p.ID]
		if ok && prev.State == p.State && prev.Checkpoint.Rows == p.Checkpoint.Rows {
			continue
		}
		seen[p.ID] = p
		if ok && prev.State == engine.Done {
			continue // counted done once
		}
		pr := engine.Progress{Job: rb.Job, Run: rb.ID, Partition: p.ID, State: p.State, Rows: p.Checkpoint.Rows, EstRows: p.EstRows}
		if p.Error != "" {
			pr.Err = errors.New(p.Error)
		} else if p.State == engine.Failed {
			pr.Err = errors.New("failed")
		}
		ui.Update(pr)
	}
	return ui
}

// printSummary is the line `datashift run` ends with, for a run watched
// through a node.
func printSummary(w io.Writer, run *engine.RunRecord, parts int) {
	d := runDuration(run)
	rate := 0.0
	if d > 0 {
		rate = float64(run.Rows) / d.Seconds()
	}
	fmt.Fprintf(w, "%s: run %s %s: %d rows, %s in %s (%s rows/s)", run.Job, run.ID, run.State, run.Rows, humanBytes(run.Bytes), d, humanCount(rate))
	if parts > 0 {
		fmt.Fprintf(w, ", %d partitions (%s)", parts, run.Scheme)
	}
	fmt.Fprintln(w)
	if run.BadRows > 0 {
		fmt.Fprintf(w, "%s: %d bad rows set aside\n", run.Job, run.BadRows)
	}
	if run.Error != "" {
		fmt.Fprintf(w, "%s: %s\n", run.Job, run.Error)
	}
	if run.State == engine.RunFailed && parts > 0 { // a run refused at its start has nothing to continue
		fmt.Fprintf(w, "%s: fix the cause and trigger the job again to continue run %s from its checkpoints\n", run.Job, run.ID)
	}
}

func triggerCmd() *cobra.Command {
	r := &remote{}
	var watch bool
	cmd := remoteCmd(r, "trigger JOB", "Queue a run of a job now; --watch follows it to its end",
		`Queues a run of the job. It starts once the cluster's leader takes it from
the queue, after the job's run going, if one is; a failed run is continued from
its checkpoints. With --watch, waits for the run to start and follows it as
status --watch does; the exit code is then 1 unless the run succeeded.`,
		nArgs(1, 1), func(ctx context.Context, c *apiClient, cmd *cobra.Command, args []string) error {
			job := args[0]
			var queued map[string]string
			raw, err := c.send(ctx, http.MethodPost, "/api/jobs/"+pathEscape(job)+"/trigger", nil, &queued)
			if err != nil {
				return err
			}
			if !watch {
				if r.json() {
					return printJSON(cmd.OutOrStdout(), raw)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "queued a run of job %s (%s)\n", job, queued["queued"])
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "queued a run of job %s (%s); waiting for it to start\n", job, queued["queued"])
			for {
				var now []engine.RunRecord
				if _, err := c.get(ctx, runsPathOf(job, 20), &now); err != nil {
					if ctx.Err() != nil {
						return &cliError{code: 1, msg: fmt.Sprintf("stopped waiting; the run of job %s stays queued", job)}
					}
					return err
				}
				if run, ok := triggeredRun(now, queued["queued"]); ok {
					return watchRun(ctx, c, r.json(), job, run.ID, cmd.OutOrStdout(), cmd.ErrOrStderr())
				}
				select {
				case <-ctx.Done():
					return &cliError{code: 1, msg: fmt.Sprintf("stopped waiting; the run of job %s stays queued", job)}
				case <-time.After(watchEvery / 5): // soon, to see a short run's partitions
				}
			}
		})
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "wait for the run and follow it to its end")
	return cmd
}

// triggeredRun finds, among a job's runs, the one the trigger that was
// answered with entry started: a new run, or a failed one continued (or
// refused), whose record names the entry.
func triggeredRun(runs []engine.RunRecord, entry string) (engine.RunRecord, bool) {
	for _, r := range runs {
		if r.QueueEntry == entry {
			return r, true
		}
	}
	return engine.RunRecord{}, false
}

func pauseCmd(pause bool) *cobra.Command {
	r := &remote{}
	use, short, action := "pause JOB", "Stop a job's schedule from firing until it is resumed", "pause"
	long := `Pauses the job's schedule: no tick fires it, and a run going goes on. A
trigger by hand still runs it.`
	if !pause {
		use, short, action = "resume JOB", "Let a paused job's schedule fire again", "resume"
		long = `Resumes the job's schedule; the ticks it missed while paused go as its
misfire policy says.`
	}
	return remoteCmd(r, use, short, long, nArgs(1, 1), func(ctx context.Context, c *apiClient, cmd *cobra.Command, args []string) error {
		job := args[0]
		var info coordinator.ScheduleInfo
		raw, err := c.send(ctx, http.MethodPost, "/api/jobs/"+pathEscape(job)+"/"+action, nil, &info)
		if err != nil {
			return err
		}
		if r.json() {
			return printJSON(cmd.OutOrStdout(), raw)
		}
		out := cmd.OutOrStdout()
		switch {
		case info.Paused:
			fmt.Fprintf(out, "job %s is paused (since %s): its schedule does not fire until resumed\n", job, when(info.PausedAt))
		case len(info.NextFires) > 0:
			fmt.Fprintf(out, "job %s is resumed: next fire %s\n", job, when(info.NextFires[0]))
		default:
			fmt.Fprintf(out, "job %s is resumed (no timed fires: it runs after its upstreams or when triggered)\n", job)
		}
		return nil
	})
}

func deleteCmd() *cobra.Command {
	r := &remote{}
	return remoteCmd(r, "delete JOB", "Delete a job from the cluster",
		`Deletes the job; what its runs wrote stays in the sink. A job other jobs run
after is not deleted (exit 5) until they are.`,
		nArgs(1, 1), func(ctx context.Context, c *apiClient, cmd *cobra.Command, args []string) error {
			job := args[0]
			if _, err := c.do(ctx, http.MethodDelete, "/api/jobs/"+pathEscape(job), nil); err != nil {
				return err
			}
			if r.json() {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"job": job, "deleted": true})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted job %s\n", job)
			return nil
		})
}

func nodesCmd() *cobra.Command {
	r := &remote{}
	return remoteCmd(r, "nodes", "List the cluster's nodes, the leader and their free slots, load and memory",
		`Lists the nodes of the cluster as each last published itself: the leader, the
API address, free and total slots, the 1-minute load per core, the host's
available memory and the node's Go heap.`,
		nArgs(0, 0), func(ctx context.Context, c *apiClient, cmd *cobra.Command, _ []string) error {
			var body nodesBody
			raw, err := c.get(ctx, "/api/nodes", &body)
			if err != nil {
				return err
			}
			if r.json() {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tLEADER\tADDR\tSLOTS FREE\tLOAD\tMEM AVAIL\tHEAP\tRUNNING")
			for _, n := range body.Nodes {
				leader := ""
				if n.Leader {
					leader = "*"
				}
				slots, load, mem, heap, running := fmt.Sprintf("?/%d", n.Info.Slots), "-", "-", "-", "-"
				if res := n.Resources; res != nil {
					slots = fmt.Sprintf("%d/%d", res.Free, res.Slots)
					load = fmt.Sprintf("%.2f", res.Load)
					if res.MemAvailable > 0 {
						mem = humanBytes(res.MemAvailable)
					}
					heap = humanBytes(res.Heap)
					running = strconv.Itoa(len(res.Running))
					if res.Draining {
						running += " (draining)"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, orDash(leader), n.Info.Addr, slots, load, mem, heap, running)
			}
			return tw.Flush()
		})
}

func configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config get | set FILE | set KEY=VALUE…",
		Short: "Read or change the cluster's settings",
		Long: `The cluster's settings (slots, batch_rows, commit_rows, log_level), which
every node applies as it hears of a change. get prints them as JSON; set
replaces them with a JSON file (- for standard input), or changes the keys
given as KEY=VALUE (an empty VALUE sets the key back to each node's own).` + "\n" + exitCodesHelp,
		Args: nArgs(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("config %s: want get or set", args[0])
		},
	}
	flagsAreUsage(cmd)
	get := &remote{}
	getCmd := remoteCmd(get, "get", "Print the cluster's settings as JSON", "Prints the cluster's settings as JSON.",
		nArgs(0, 0), func(ctx context.Context, c *apiClient, cmd *cobra.Command, _ []string) error {
			raw, err := c.get(ctx, "/api/config", nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), raw)
		})
	set := &remote{}
	setCmd := remoteCmd(set, "set FILE | KEY=VALUE…", "Replace the cluster's settings, or change some of them",
		`Replaces the cluster's settings with a JSON file (- for standard input), or
changes the keys given as KEY=VALUE and keeps the others; an empty VALUE sets
the key back to each node's own. Prints the settings as they now are.`,
		nArgs(1, -1), func(ctx context.Context, c *apiClient, cmd *cobra.Command, args []string) error {
			if len(args) == 1 && !strings.Contains(args[0], "=") {
				body, err := readSpec(cmd, args[0])
				if err != nil {
					return err
				}
				raw, err := c.send(ctx, http.MethodPut, "/api/config", body, nil)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), raw)
			}
			// KEY=VALUE changes the settings as read: the PUT names their
			// revision, and is made again on the newer one if someone
			// changed them in between.
			for attempt := 1; ; attempt++ {
				body, etag, err := configChanged(ctx, c, args)
				if err != nil {
					return err
				}
				raw, _, err := c.request(ctx, http.MethodPut, "/api/config", body, http.Header{"If-Match": {etag}})
				var se *serverError
				if errors.As(err, &se) && se.Status == http.StatusPreconditionFailed && attempt < 5 {
					continue
				}
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), raw)
			}
		})
	cmd.AddCommand(getCmd, setCmd)
	return cmd
}

// configChanged is the cluster's settings with the KEY=VALUE arguments
// applied, and the revision (ETag) they were read at.
func configChanged(ctx context.Context, c *apiClient, args []string) ([]byte, string, error) {
	cfg := map[string]any{}
	raw, header, err := c.request(ctx, http.MethodGet, "/api/config", nil, nil)
	if err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, "", fmt.Errorf("GET %s/api/config: the answer is not what a datashift node sends: %w", c.base, err)
	}
	for _, a := range args {
		key, value, ok := strings.Cut(a, "=")
		if !ok || key == "" {
			return nil, "", usageErrorf("config set %q: want KEY=VALUE, or one file", a)
		}
		switch n, err := strconv.ParseInt(value, 10, 64); {
		case value == "":
			delete(cfg, key)
		case err == nil:
			cfg[key] = n
		default:
			cfg[key] = value
		}
	}
	body, err := json.Marshal(cfg)
	return body, header.Get("ETag"), err
}
