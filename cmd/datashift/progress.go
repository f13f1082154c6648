package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/datashift/datashift/engine"
)

// progressUI shows a bar per partition and one for the whole run on a
// terminal; elsewhere (CI logs, pipes) a line every few seconds; nothing but
// failures when quiet.
type progressUI struct {
	w     io.Writer
	bars  bool
	quiet bool
	mu    sync.Mutex
	p     *mpb.Progress
	total *mpb.Bar
	part  map[string]*mpb.Bar
	rows  map[string]int64
	est   int64
	// resumed is the rows earlier attempts had copied, left out of rates.
	resumed int64
	// planned: Plan was called; until then there is no count of
	// partitions to report against.
	planned bool
	done    int
	n       int
	// finished: the bars are gone; lines go straight to w.
	finished bool
	start    time.Time
	last     time.Time
}

func newProgressUI(w io.Writer, quiet bool) *progressUI {
	ui := &progressUI{w: w, quiet: quiet, part: map[string]*mpb.Bar{}, rows: map[string]int64{}, start: time.Now()}
	if f, ok := w.(*os.File); ok && !quiet && isTerminal(f) {
		ui.bars = true
		ui.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond))
	}
	return ui
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Plan creates the bars once the partitions are known.
func (ui *progressUI) Plan(run *engine.RunRecord, parts []engine.PartitionRecord) {
	ui.mu.Lock()
	defer ui.mu.Unlock()
	ui.planned = true
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	// The plan is read once the run started, and a small run's partitions
	// may have been copied, or even ended and gone, by then: those this
	// process reported on are its own work, not rows an earlier attempt
	// left.
	var earlier []engine.PartitionRecord
	for _, p := range parts {
		ui.est += max(p.EstRows, 1)
		if _, ours := ui.rows[p.ID]; ours {
			continue
		}
		earlier = append(earlier, p)
		ui.rows[p.ID] = p.Checkpoint.Rows
		ui.resumed += p.Checkpoint.Rows
		if p.State == engine.Done {
			ui.done++
		}
	}
	ui.n = max(len(parts), len(ui.rows))
	if !ui.quiet {
		fmt.Fprintf(ui.w, "%s: run %s, %d partitions (%s): %s\n", run.Job, run.ID, ui.n, run.Scheme, run.Reason)
		if started := countStarted(earlier); started > 0 {
			fmt.Fprintf(ui.w, "%s: resuming from checkpoints: %d partitions done, %d part-way, %d rows already copied\n",
				run.Job, ui.done, started-ui.done, ui.resumed)
		}
	}
	if !ui.bars {
		return
	}
	ui.total = ui.p.AddBar(ui.est,
		mpb.PrependDecorators(decor.Name("total  ", decor.WC{W: 8}), decor.CountersNoUnit("%d/%d rows", decor.WCSyncWidth)),
		mpb.AppendDecorators(decor.AverageSpeed(0, "%.0f rows/s"), decor.Name(" "), decor.Percentage()))
	for _, p := range parts {
		bar := ui.p.AddBar(max(p.EstRows, 1),
			mpb.PrependDecorators(decor.Name(p.ID, decor.WC{W: 8}), decor.CountersNoUnit("%d/%d", decor.WCSyncWidth)),
			mpb.AppendDecorators(decor.OnComplete(decor.Percentage(), "done")))
		bar.SetCurrent(p.Checkpoint.Rows)
		if p.State == engine.Done {
			bar.SetTotal(-1, true)
		}
		ui.part[p.ID] = bar
	}
	ui.total.SetCurrent(ui.sumRows())
}

func (ui *progressUI) sumRows() int64 {
	var n int64
	for _, r := range ui.rows {
		n += r
	}
	return n
}

// Update takes an executor's progress report. Once the last partition is
// done it says the run is finishing: the sink may take a while yet (a
// PostgreSQL table loaded bare gets its indexes then), with every bar full.
func (ui *progressUI) Update(p engine.Progress) {
	if ui.update(p) {
		fmt.Fprintf(ui, "%s: all %d partitions copied; finishing the run (a sink that builds its indexes after the rows builds them now)\n", p.Job, ui.n)
	}
}

// update takes the report; finishing is whether it ended the last
// partition.
func (ui *progressUI) update(p engine.Progress) (finishing bool) {
	ui.mu.Lock()
	defer ui.mu.Unlock()
	ui.rows[p.Partition] = p.Rows
	if p.State == engine.Done {
		ui.done++
		finishing = ui.planned && !ui.quiet && ui.done == ui.n
	}
	if !ui.bars {
		if p.State == engine.Failed || (p.State == engine.Pending && p.Err != nil) {
			fmt.Fprintf(ui.w, "partition %s: %s: %v\n", p.Partition, p.State, p.Err)
		}
		if !ui.quiet && ui.planned && (time.Since(ui.last) >= 5*time.Second || (ui.done == ui.n && p.State == engine.Done)) {
			ui.last = time.Now()
			rows := ui.sumRows()
			fmt.Fprintf(ui.w, "%d/%d partitions done, %d rows, %s rows/s\n", ui.done, ui.n, rows, humanCount(float64(rows-ui.resumed)/time.Since(ui.start).Seconds()))
		}
		return finishing
	}
	if bar := ui.part[p.Partition]; bar != nil {
		if p.Rows > p.EstRows {
			bar.SetTotal(p.Rows+1, false)
		}
		bar.SetCurrent(p.Rows)
		if p.State == engine.Done {
			bar.SetTotal(-1, true)
		}
		if p.State == engine.Failed {
			bar.Abort(false)
		}
	}
	if rows := ui.sumRows(); ui.total != nil {
		if rows > ui.est {
			ui.total.SetTotal(rows+1, false)
		}
		ui.total.SetCurrent(rows)
	}
	return finishing
}

// Resumed is how many rows earlier attempts of the run had copied.
func (ui *progressUI) Resumed() int64 { return ui.resumed }

// Partitions is how many partitions the run had.
func (ui *progressUI) Partitions() int { return ui.n }

// Wait lets the bars draw their last state.
func (ui *progressUI) Wait() {
	if !ui.bars {
		return
	}
	ui.mu.Lock()
	for _, b := range ui.part {
		if !b.Completed() {
			b.Abort(false)
		}
	}
	if ui.total != nil && !ui.total.Completed() {
		ui.total.SetTotal(-1, true)
	}
	ui.finished = true
	ui.mu.Unlock()
	ui.p.Wait()
}

// Write prints a line of the run's log: above the bars while they run.
func (ui *progressUI) Write(b []byte) (int, error) {
	ui.mu.Lock()
	bars := ui.bars && !ui.finished
	ui.mu.Unlock()
	if bars {
		// Not under ui.mu: the bars' refresh waits for the line.
		if n, err := ui.p.Write(b); err == nil {
			return n, nil
		}
	}
	return ui.w.Write(b)
}

// warnings is the log of a run for the person at the terminal: what is
// retried or left undone, without timestamps.
func warnings(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
}

// countStarted counts the partitions an earlier attempt got to.
func countStarted(parts []engine.PartitionRecord) int {
	n := 0
	for _, p := range parts {
		if p.Checkpoint.Started {
			n++
		}
	}
	return n
}
