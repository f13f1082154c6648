package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/datashift/datashift/connectors"
)

// SpecPin is the part of a job's spec that a run's plan, positions and
// commit records depend on: what is read, where it goes, and the
// incremental cursor. A run continues only under the pin it was planned
// with. Passwords are left out (a rotated password must not stop a resume),
// and so is everything that only tunes how the copy runs (parallelism,
// batch and commit sizes, retries, rate limits, bad-row budgets, schedule,
// callbacks).
type SpecPin struct {
	Source SourceSpec `json:"source"`
	Sink   SinkSpec   `json:"sink"`
	Cursor string     `json:"cursor,omitempty"`
}

// Pin returns the job's pin.
func (j *Job) Pin() SpecPin {
	p := SpecPin{Source: j.Source, Sink: j.Sink}
	p.Source.DSN = connectors.Redacted(j.Source.DSN)
	p.Sink.DSN = connectors.Redacted(j.Sink.DSN)
	p.Sink.CreateTable = false // done once, by the run's prepare step
	if j.Incremental != nil {
		p.Cursor = j.Incremental.Cursor
	}
	return p
}

// JobOf returns job as run runs it: keyed by its source table's primary
// key when the job names no key and the run was planned by it (see
// Steps.NewRun). The pin is of the job as written.
func (run *RunRecord) JobOf(job *Job) *Job {
	if len(job.Source.Key) > 0 || len(run.PrimaryKey) == 0 {
		return job
	}
	keyed := *job
	keyed.Source.Key = slices.Clone(run.PrimaryKey)
	return &keyed
}

// Hash is a stable digest of the pin.
func (p SpecPin) Hash() string {
	b, _ := json.Marshal(p) // plain strings, lists and maps: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Changes lists, by field path, how to differs from p: `source.where:
// "a > 1" → "a > 2"`. Empty when they are the same.
func (p SpecPin) Changes(to SpecPin) []string {
	before, after := flatten(p), flatten(to)
	var out []string
	for field, was := range before {
		if now, ok := after[field]; !ok {
			out = append(out, fmt.Sprintf("%s: %s → (unset)", field, was))
		} else if now != was {
			out = append(out, fmt.Sprintf("%s: %s → %s", field, was, now))
		}
	}
	for field, now := range after {
		if _, ok := before[field]; !ok {
			out = append(out, fmt.Sprintf("%s: (unset) → %s", field, now))
		}
	}
	sort.Strings(out)
	return out
}

// flatten maps each leaf of v's JSON form to its JSON text, by dotted path.
func flatten(v any) map[string]string {
	b, _ := json.Marshal(v)
	var tree any
	_ = json.Unmarshal(b, &tree)
	out := map[string]string{}
	var walk func(prefix string, n any)
	walk = func(prefix string, n any) {
		if m, ok := n.(map[string]any); ok && len(m) > 0 {
			for k, child := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), child)
			}
			return
		}
		leaf, _ := json.Marshal(n)
		out[prefix] = string(leaf)
	}
	walk("", tree)
	return out
}

// PinError refuses to continue a run under a spec or an input it was not
// planned with.
type PinError struct {
	Job, Run string
	Changes  []string
}

func (e *PinError) Error() string {
	return fmt.Sprintf("job %q: run %s was planned with another spec or input (%s); run it as it was to continue it, or restart it (datashift run --restart) to abandon it, its rows staying in the sink",
		e.Job, e.Run, strings.Join(e.Changes, "; "))
}

// inputChanges lists how the files a run planned differ from now.
func inputChanges(planned, now []connectors.FileInfo) []string {
	was := map[string]connectors.FileInfo{}
	for _, f := range planned {
		was[f.Path] = f
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range now {
		seen[f.Path] = true
		old, ok := was[f.Path]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("input %s is new", f.Path))
		case old.Size != f.Size:
			out = append(out, fmt.Sprintf("input %s changed size (%d → %d bytes)", f.Path, old.Size, f.Size))
		case !old.ModTime.Equal(f.ModTime):
			out = append(out, fmt.Sprintf("input %s was modified (%s → %s)", f.Path, old.ModTime.UTC().Format("2006-01-02T15:04:05.999Z"), f.ModTime.UTC().Format("2006-01-02T15:04:05.999Z")))
		}
	}
	for _, f := range planned {
		if !seen[f.Path] {
			out = append(out, fmt.Sprintf("input %s is gone", f.Path))
		}
	}
	sort.Strings(out)
	return out
}
