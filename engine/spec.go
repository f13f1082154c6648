package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/datashift/datashift/connectors"
)

// Job is a transfer job: copy a source into a sink, now or on a schedule.
// It is decoded from YAML or JSON with unknown fields refused, and checked by
// Validate before anything runs.
type Job struct {
	Name       string        `yaml:"name" json:"name"`
	Source     SourceSpec    `yaml:"source" json:"source"`
	Sink       SinkSpec      `yaml:"sink" json:"sink"`
	Partitions PartitionSpec `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	// BatchRows and BatchBytes bound one Arrow record batch.
	BatchRows  int  `yaml:"batch_rows,omitempty" json:"batch_rows,omitempty"`
	BatchBytes Size `yaml:"batch_bytes,omitempty" json:"batch_bytes,omitempty"`
	// CommitRows is how many rows a partition writes between sink commits
	// (and checkpoints): smaller loses less work on a crash, larger is faster.
	CommitRows int64 `yaml:"commit_rows,omitempty" json:"commit_rows,omitempty"`
	// Parallelism is how many partitions run at once on one process.
	Parallelism int              `yaml:"parallelism,omitempty" json:"parallelism,omitempty"`
	Incremental *IncrementalSpec `yaml:"incremental,omitempty" json:"incremental,omitempty"`
	Snapshot    bool             `yaml:"snapshot,omitempty" json:"snapshot,omitempty"`
	Schedule    *ScheduleSpec    `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	Retries     RetrySpec        `yaml:"retries,omitempty" json:"retries,omitempty"`
	Callbacks   []CallbackSpec   `yaml:"callbacks,omitempty" json:"callbacks,omitempty"`
	RateLimit   RateLimitSpec    `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
	BadRows     BadRowsSpec      `yaml:"bad_rows,omitempty" json:"bad_rows,omitempty"`
}

// SourceSpec says what to read.
type SourceSpec struct {
	Type    string   `yaml:"type" json:"type"`
	DSN     string   `yaml:"dsn" json:"dsn"`
	Table   string   `yaml:"table,omitempty" json:"table,omitempty"`
	Query   string   `yaml:"query,omitempty" json:"query,omitempty"`
	Key     []string `yaml:"key,omitempty" json:"key,omitempty"`
	Columns []string `yaml:"columns,omitempty" json:"columns,omitempty"`
	Where   string   `yaml:"where,omitempty" json:"where,omitempty"`
	Options Options  `yaml:"options,omitempty" json:"options,omitempty"`
}

// SinkSpec says where to write.
type SinkSpec struct {
	Type        string               `yaml:"type" json:"type"`
	DSN         string               `yaml:"dsn" json:"dsn"`
	Table       string               `yaml:"table,omitempty" json:"table,omitempty"`
	Mode        connectors.WriteMode `yaml:"mode,omitempty" json:"mode,omitempty"`
	CreateTable bool                 `yaml:"create_table,omitempty" json:"create_table,omitempty"`
	Options     Options              `yaml:"options,omitempty" json:"options,omitempty"`
}

// PartitionSpec sizes the partitions of a run.
type PartitionSpec struct {
	TargetRows  int64 `yaml:"target_rows,omitempty" json:"target_rows,omitempty"`
	TargetBytes Size  `yaml:"target_bytes,omitempty" json:"target_bytes,omitempty"`
	Max         int   `yaml:"max,omitempty" json:"max,omitempty"`
}

// IncrementalSpec makes each run copy only rows whose cursor column reached
// the previous run's high-water mark (see docs/exactly-once.md).
type IncrementalSpec struct {
	Cursor string `yaml:"cursor" json:"cursor"`
	// Lookback, with an upsert sink only, starts each window this far
	// before the mark, to catch rows committed late with an older cursor
	// value: a duration ("10m") for a time cursor, a number for a numeric
	// one.
	Lookback string `yaml:"lookback,omitempty" json:"lookback,omitempty"`
}

// Overlap policies: what a trigger does while the job's previous run is still going.
const (
	OverlapSkip  = "skip"  // drop the new fire
	OverlapQueue = "queue" // run it after the current one
	OverlapAllow = "allow" // run both
)

// Misfire policies: what a job's owner does with ticks that passed while
// nobody fired them (every owner dead, the cluster down, the job paused).
const (
	MisfireFireOnce = "fire_once" // one late run stands for them all
	MisfireSkip     = "skip"      // none: wait for the next tick
	MisfireFireAll  = "fire_all"  // a run for each, the newest misfire_cap of them
)

// Misfire defaults.
const (
	DefaultMisfireCap   = 10
	DefaultMisfireGrace = 5 * time.Second
	// MaxMisfireCap bounds fire_all: a storm of runs after a long outage
	// helps nobody.
	MaxMisfireCap = 1000
)

// ScheduleSpec fires the job by cron, after upstream jobs, or both.
type ScheduleSpec struct {
	Cron     string   `yaml:"cron,omitempty" json:"cron,omitempty"`
	Timezone string   `yaml:"timezone,omitempty" json:"timezone,omitempty"`
	After    []string `yaml:"after,omitempty" json:"after,omitempty"`
	Overlap  string   `yaml:"overlap,omitempty" json:"overlap,omitempty"`
	// Misfire is the policy for missed ticks (default fire_once);
	// MisfireCap bounds fire_all; MisfireGrace is how late a tick may fire
	// and still count as on time (default 5s).
	Misfire      string   `yaml:"misfire,omitempty" json:"misfire,omitempty"`
	MisfireCap   int      `yaml:"misfire_cap,omitempty" json:"misfire_cap,omitempty"`
	MisfireGrace Duration `yaml:"misfire_grace,omitempty" json:"misfire_grace,omitempty"`
}

// RetrySpec bounds retries of a partition after transient errors.
type RetrySpec struct {
	Max        int      `yaml:"max,omitempty" json:"max,omitempty"`
	Backoff    Duration `yaml:"backoff,omitempty" json:"backoff,omitempty"`
	MaxBackoff Duration `yaml:"max_backoff,omitempty" json:"max_backoff,omitempty"`
}

// CallbackSpec is an HTTP POST sent when a run ends.
type CallbackSpec struct {
	URL string   `yaml:"url" json:"url"`
	On  []string `yaml:"on,omitempty" json:"on,omitempty"` // success, failure; empty: both
}

// RateLimitSpec caps the rows per second of the whole job (0: no cap).
type RateLimitSpec struct {
	RowsPerSecond int64 `yaml:"rows_per_second,omitempty" json:"rows_per_second,omitempty"`
}

// BadRowsSpec is the error budget: rows the sink rejects are set aside with
// their reason instead of failing the run, up to Max rows or Ratio of the rows
// read. The default budget is zero: the first bad row fails the run, naming
// its column and key.
type BadRowsSpec struct {
	Max        int64   `yaml:"max,omitempty" json:"max,omitempty"`
	Ratio      float64 `yaml:"ratio,omitempty" json:"ratio,omitempty"`
	RejectFile string  `yaml:"reject_file,omitempty" json:"reject_file,omitempty"`
}

// Defaults filled in by Normalize.
const (
	DefaultBatchRows   = 10000
	DefaultBatchBytes  = 8 << 20
	DefaultCommitRows  = 100000
	DefaultTargetRows  = 500000
	DefaultMaxParts    = 64
	DefaultRetries     = 5
	DefaultBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultParallelism = 4
)

// Normalize fills in defaults. It does not validate.
func (j *Job) Normalize() {
	if j.Sink.Mode == "" {
		j.Sink.Mode = connectors.Append
	}
	if j.BatchRows == 0 {
		j.BatchRows = DefaultBatchRows
	}
	if j.BatchBytes == 0 {
		j.BatchBytes = DefaultBatchBytes
	}
	if j.CommitRows == 0 {
		j.CommitRows = DefaultCommitRows
	}
	if j.Partitions.TargetRows == 0 && j.Partitions.TargetBytes == 0 {
		j.Partitions.TargetRows = DefaultTargetRows
	}
	if j.Partitions.Max == 0 {
		j.Partitions.Max = DefaultMaxParts
	}
	if j.Parallelism == 0 {
		j.Parallelism = DefaultParallelism
	}
	if j.Retries.Max == 0 {
		j.Retries.Max = DefaultRetries
	}
	if j.Retries.Backoff == 0 {
		j.Retries.Backoff = Duration(DefaultBackoff)
	}
	if j.Retries.MaxBackoff == 0 {
		j.Retries.MaxBackoff = Duration(DefaultMaxBackoff)
	}
	if j.Schedule != nil && j.Schedule.Overlap == "" {
		j.Schedule.Overlap = OverlapSkip
	}
}

// SpecError is a job spec refused before anything runs; Field is the path of
// the offending field, e.g. "sink.mode".
type SpecError struct {
	Job    string
	Field  string
	Reason string
	// Of names what Field is a field of when it is not a job spec (the
	// cluster's config).
	Of string
}

func (e *SpecError) Error() string {
	where := "job spec"
	switch {
	case e.Of != "":
		where = e.Of
	case e.Job != "":
		where = fmt.Sprintf("job %q", e.Job)
	}
	if e.Field == "" { // the spec as a whole
		return where + ": " + e.Reason
	}
	return where + ": " + e.Field + ": " + e.Reason
}

// SpecErrors is every problem found in a spec, so a user fixes them in one go.
type SpecErrors []*SpecError

func (es SpecErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As find a *SpecError.
func (es SpecErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

var jobName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Validate checks what can be checked without reaching the stores: every
// field, the connector types, cron and time zone. Columns are checked against
// the source by Check, which opens it.
func (j *Job) Validate() error {
	var errs SpecErrors
	bad := func(field, format string, args ...any) {
		errs = append(errs, &SpecError{Job: j.Name, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !jobName.MatchString(j.Name) {
		bad("name", "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit (got %q)", j.Name)
	}
	if j.Source.Type == "" {
		bad("source.type", "is required (one of %v)", connectors.SourceTypes())
	} else if !contains(connectors.SourceTypes(), j.Source.Type) {
		bad("source.type", "unknown connector %q (one of %v)", j.Source.Type, connectors.SourceTypes())
	}
	if j.Source.DSN == "" {
		bad("source.dsn", "is required")
	} else if err := connectors.CheckDSN(j.Source.DSN); err != nil {
		bad("source.dsn", "%v", err)
	}
	if j.Source.Table != "" && j.Source.Query != "" {
		bad("source.query", "give table or query, not both")
	}
	if j.Sink.Type == "" {
		bad("sink.type", "is required (one of %v)", connectors.SinkTypes())
	} else if !contains(connectors.SinkTypes(), j.Sink.Type) {
		bad("sink.type", "unknown connector %q (one of %v)", j.Sink.Type, connectors.SinkTypes())
	}
	if j.Sink.DSN == "" {
		bad("sink.dsn", "is required")
	} else if err := connectors.CheckDSN(j.Sink.DSN); err != nil {
		bad("sink.dsn", "%v", err)
	}
	switch j.Sink.Mode {
	case "", connectors.Append, connectors.Truncate:
	case connectors.Upsert:
		// A table's primary key serves when the job names none (Steps.NewRun).
		if len(j.Source.Key) == 0 && j.Source.Table == "" {
			bad("source.key", "is required for sink.mode upsert (the columns rows are matched by) unless source.table has a primary key")
		}
	default:
		bad("sink.mode", "must be append, truncate or upsert (got %q)", j.Sink.Mode)
	}
	if dup := firstDuplicate(j.Source.Key); dup != "" {
		bad("source.key", "column %q is listed twice", dup)
	}
	if dup := firstDuplicate(j.Source.Columns); dup != "" {
		bad("source.columns", "column %q is listed twice", dup)
	}
	if len(j.Source.Columns) > 0 {
		for _, k := range j.Source.Key {
			if !contains(j.Source.Columns, k) {
				bad("source.key", "key column %q must be among source.columns", k)
			}
		}
	}
	if j.BatchRows < 0 {
		bad("batch_rows", "must not be negative")
	}
	if j.CommitRows < 0 {
		bad("commit_rows", "must not be negative")
	}
	if err := CheckParallelism(j.Parallelism); err != nil {
		bad("parallelism", "%v", err)
	}
	if j.Partitions.TargetRows < 0 || j.Partitions.TargetBytes < 0 || j.Partitions.Max < 0 {
		bad("partitions", "sizes must not be negative")
	} else if j.Partitions.Max > MaxPartitions {
		bad("partitions.max", "%d is more than %d: each partition costs a plan entry, a lease and a commit record; raise partitions.target_rows instead", j.Partitions.Max, MaxPartitions)
	}
	if inc := j.Incremental; inc != nil {
		if inc.Cursor == "" {
			bad("incremental.cursor", "is required")
		} else if len(j.Source.Columns) > 0 && !contains(j.Source.Columns, inc.Cursor) {
			bad("incremental.cursor", "column %q must be among source.columns", inc.Cursor)
		}
		if inc.Lookback != "" {
			if _, err := parseLookback(inc.Lookback); err != nil {
				bad("incremental.lookback", "%v", err)
			} else if j.Sink.Mode != connectors.Upsert {
				bad("incremental.lookback", "needs sink.mode upsert (got %s): re-reading the rows before the mark would write them into the sink again", j.Sink.Mode)
			}
		}
	}
	if s := j.Schedule; s != nil {
		if s.Cron == "" && len(s.After) == 0 {
			bad("schedule", "needs cron, after, or both")
		}
		if s.Timezone != "" {
			if _, err := time.LoadLocation(s.Timezone); err != nil {
				bad("schedule.timezone", "unknown time zone %q", s.Timezone)
			}
		}
		if s.Cron != "" {
			if _, err := ParseSchedule(s.Cron, ""); err != nil {
				bad("schedule.cron", "%v (got %q)", err, s.Cron)
			}
		}
		switch s.Misfire {
		case "", MisfireFireOnce, MisfireSkip, MisfireFireAll:
		default:
			bad("schedule.misfire", "must be fire_once, skip or fire_all (got %q)", s.Misfire)
		}
		if s.MisfireCap < 0 || s.MisfireCap > MaxMisfireCap {
			bad("schedule.misfire_cap", "must be between 1 and %d (got %d)", MaxMisfireCap, s.MisfireCap)
		}
		if s.MisfireGrace < 0 {
			bad("schedule.misfire_grace", "must not be negative")
		}
		if s.Overlap == OverlapAllow {
			// Two runs at once would move one high-water mark, or empty
			// the table under each other.
			if j.Incremental != nil {
				bad("schedule.overlap", "allow cannot be used with incremental: two runs at once would copy the same window")
			}
			if j.Sink.Mode == connectors.Truncate {
				bad("schedule.overlap", "allow cannot be used with sink.mode truncate: each run would empty the table under the other")
			}
		}
		for _, up := range s.After {
			if up == j.Name {
				bad("schedule.after", "job cannot run after itself")
			}
		}
		switch s.Overlap {
		case "", OverlapSkip, OverlapQueue, OverlapAllow:
		default:
			bad("schedule.overlap", "must be skip, queue or allow (got %q)", s.Overlap)
		}
	}
	if j.Retries.Max < 0 {
		bad("retries.max", "must not be negative")
	}
	for i, cb := range j.Callbacks {
		if !strings.HasPrefix(cb.URL, "http://") && !strings.HasPrefix(cb.URL, "https://") {
			bad(fmt.Sprintf("callbacks[%d].url", i), "must be an http:// or https:// URL (got %q)", connectors.Redacted(cb.URL))
		} else if err := connectors.CheckDSN(cb.URL); err != nil {
			bad(fmt.Sprintf("callbacks[%d].url", i), "%v", err)
		}
		for _, on := range cb.On {
			if on != "success" && on != "failure" {
				bad(fmt.Sprintf("callbacks[%d].on", i), "must be success or failure (got %q)", on)
			}
		}
	}
	if j.RateLimit.RowsPerSecond < 0 {
		bad("rate_limit.rows_per_second", "must not be negative")
	}
	if j.BadRows.Max < 0 {
		bad("bad_rows.max", "must not be negative")
	}
	if j.BadRows.Ratio < 0 || j.BadRows.Ratio > 1 {
		bad("bad_rows.ratio", "must be between 0 and 1")
	}
	errs = append(errs, j.optionErrors()...)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// ValidateSet checks what involves several jobs: unique names, `after`
// naming jobs that exist, and no cycle among `after` edges.
func ValidateSet(jobs []*Job) error {
	byName := map[string]*Job{}
	var errs SpecErrors
	for _, j := range jobs {
		if _, dup := byName[j.Name]; dup {
			errs = append(errs, &SpecError{Job: j.Name, Field: "name", Reason: "another job has the same name"})
		}
		byName[j.Name] = j
	}
	for _, j := range jobs {
		if j.Schedule == nil {
			continue
		}
		for _, up := range j.Schedule.After {
			if _, ok := byName[up]; !ok {
				errs = append(errs, &SpecError{Job: j.Name, Field: "schedule.after", Reason: fmt.Sprintf("unknown job %q", up)})
			}
		}
	}
	if cycle := findCycle(jobs); cycle != nil {
		errs = append(errs, &SpecError{Job: cycle[0], Field: "schedule.after", Reason: "cycle: " + strings.Join(cycle, " -> ")})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// findCycle returns the names along one cycle of the jobs' `after` edges,
// first name repeated at the end, or nil.
func findCycle(jobs []*Job) []string {
	after := map[string][]string{}
	for _, j := range jobs {
		if j.Schedule != nil {
			after[j.Name] = j.Schedule.After
		}
	}
	return FindCycle(after)
}

// FindCycle returns the names along one cycle of a graph of `after` edges
// (each job's upstreams), first name repeated at the end, or nil. Jobs are
// tried in name order, so the same graph gives the same cycle.
func FindCycle(after map[string][]string) []string {
	names := make([]string, 0, len(after))
	for n := range after {
		names = append(names, n)
	}
	sort.Strings(names)
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = onPath
		path = append(path, n)
		for _, up := range after[n] {
			switch state[up] {
			case onPath:
				for i, p := range path {
					if p == up {
						return append(append([]string(nil), path[i:]...), up)
					}
				}
			case unseen:
				if c := visit(up); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, n := range names {
		if state[n] == unseen {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// ParseJob decodes a job from YAML or JSON (JSON is YAML), refusing unknown
// fields, fills in defaults and validates it.
func ParseJob(data []byte) (*Job, error) {
	return ParseJobWith(data, JobDefaults{})
}

// JobDefaults are defaults a cluster's config gives the jobs submitted to
// it, for the fields their spec leaves out; zero fields leave the engine's.
type JobDefaults struct {
	BatchRows  int
	CommitRows int64
}

// ParseJobWith is ParseJob with d filling what the spec leaves out, before
// the engine's defaults.
func ParseJobWith(data []byte, d JobDefaults) (*Job, error) {
	var j Job
	if err := decodeJob(data, &j); err != nil {
		return nil, err
	}
	if j.BatchRows == 0 {
		j.BatchRows = d.BatchRows
	}
	if j.CommitRows == 0 {
		j.CommitRows = d.CommitRows
	}
	j.Normalize()
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return &j, nil
}

// LoadJob reads and parses a job file.
func LoadJob(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), SpecErrors{{Reason: "the file is empty: a job needs at least name, source and sink"}})
	}
	j, err := ParseJob(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return j, nil
}

// Redacted returns a copy of the job with DSN passwords replaced, for
// printing, logs and API answers.
func (j *Job) Redacted() *Job {
	c := *j
	c.Source.DSN = connectors.Redacted(j.Source.DSN)
	c.Sink.DSN = connectors.Redacted(j.Sink.DSN)
	c.Callbacks = make([]CallbackSpec, len(j.Callbacks))
	for i, cb := range j.Callbacks {
		cb.URL = connectors.Redacted(cb.URL) // http://user:password@host/hook
		c.Callbacks[i] = cb
	}
	return &c
}

// JSON returns the job as JSON with passwords redacted.
func (j *Job) JSON() []byte {
	b, _ := json.MarshalIndent(j.Redacted(), "", "  ")
	return b
}

// Duration is a time.Duration written as "500ms", "5m".
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 500ms or 5m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Size is a byte count written as 8388608, "8MiB" or "64MB".
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}

// ParseSize parses a byte count.
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		return 0, errors.New("not a size like 8388608, 8MiB or 64MB")
	}
	return Size(n * mult), nil
}

func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q: %w", n.Line, n.Value, err)
	}
	*s = v
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func firstDuplicate(list []string) string {
	seen := map[string]bool{}
	for _, x := range list {
		if seen[x] {
			return x
		}
		seen[x] = true
	}
	return ""
}
