package engine

import (
	"context"
	"errors"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

// Partition states.
const (
	Pending = "pending" // not started, or given back after its worker died
	Running = "running"
	Done    = "done"
	Failed  = "failed"
)

// Run states.
const (
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	// RunFailed keeps its partitions and checkpoints: the next run of the
	// job continues it (after the cause is fixed) instead of copying again
	// what it had committed.
	RunFailed = "failed"
	// RunAbandoned is a failed or interrupted run given up on purpose
	// (`datashift run --restart`); what it wrote stays in the sink.
	RunAbandoned = "abandoned"
)

// Checkpoint is a partition's progress as its worker last saved it, after
// each sink commit, under the partition's lease. The sink's commit record
// (connectors.CommitRecord) is the truth about what is committed; the
// checkpoint mirrors it for people and for placement, and an executor that
// finds the two apart takes the sink's.
type Checkpoint struct {
	// Position is where the read stands: the last key committed, or for a
	// keyless partition the source's read position (see
	// connectors.PositionReader). Nil: nothing committed yet.
	Position connectors.Key `json:"position,omitempty"`
	Rows     int64          `json:"rows"`
	Bytes    int64          `json:"bytes"`
	BadRows  int64          `json:"bad_rows,omitempty"`
	Commits  int64          `json:"commits,omitempty"`
	// Started is set before the first write of the first attempt: from then
	// on the sink may hold rows of this partition.
	Started bool `json:"started,omitempty"`
	// Done is set once the partition's last commit is in.
	Done bool `json:"done,omitempty"`
	// Error is why the partition's last attempt failed, as its worker
	// reports it to the leader that records the outcome.
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
}

// PartitionRecord is a partition of a run as its leader keeps it: what it
// covers and who holds it. The worker's progress is kept apart (Checkpoint),
// so that the leader's writes and the worker's never overwrite each other.
type PartitionRecord struct {
	ID      string           `json:"id"`
	Range   connectors.Range `json:"range"`
	EstRows int64            `json:"est_rows"`
	State   string           `json:"state"`
	Owner   string           `json:"owner,omitempty"`
	// Attempts counts the times the partition was taken.
	Attempts int `json:"attempts"`
	// Lease is the epoch of the partition's latest lease: each take gives a
	// greater one, and a sink's commit records carry it.
	Lease int64  `json:"lease,omitempty"`
	Error string `json:"error,omitempty"`
	// Checkpoint is the worker's latest progress; State.Partitions and
	// TakePartition fill it in from where it is kept.
	Checkpoint Checkpoint `json:"-"`
}

// RunRecord is one run of a job.
type RunRecord struct {
	Job      string    `json:"job"`
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// SpecHash and Spec pin the run to the spec it was planned with (see
	// SpecPin); Inputs to the files a file source planned. A resume under
	// anything else is refused.
	SpecHash string                `json:"spec_hash"`
	Spec     SpecPin               `json:"spec"`
	Inputs   []connectors.FileInfo `json:"inputs,omitempty"`
	// Prepared is set once the sink is prepared (created, truncated), so a
	// resumed run does not truncate what earlier attempts wrote.
	Prepared bool   `json:"prepared,omitempty"`
	Scheme   string `json:"scheme"`
	Reason   string `json:"reason"`
	// PlanKey is the plan's key (with nullability), to validate the plan
	// again when the run is resumed.
	PlanKey []partitioner.KeyColumn `json:"plan_key,omitempty"`
	// PrimaryKey is the source table's primary key, which the run is
	// keyed by when its job names no key (see JobOf).
	PrimaryKey []string `json:"primary_key,omitempty"`
	// The incremental window of this run: rows with
	// CursorFrom <= cursor <= CursorUpTo, both fixed when the run is
	// planned. CursorFrom is the job's high-water mark (minus the
	// lookback, for an upsert sink); CursorUpTo becomes the mark when the
	// run succeeds. A sink that does not upsert must not get a row twice,
	// so for it the ends are narrowed by key: CursorSkip are the rows at
	// CursorFrom that earlier runs copied (not copied again), and
	// CursorKeys the only rows at CursorUpTo this run copies (those there
	// when it was planned, with CursorSkip when both ends are one value);
	// rows that arrive at CursorUpTo later are left to the next run, which
	// skips CursorKeys. See CursorFilter.
	CursorFrom connectors.Key   `json:"cursor_from,omitempty"`
	CursorUpTo connectors.Key   `json:"cursor_up_to,omitempty"`
	CursorSkip []connectors.Key `json:"cursor_skip,omitempty"`
	CursorKeys []connectors.Key `json:"cursor_keys,omitempty"`
	Snapshot   string           `json:"snapshot,omitempty"`
	// PlanDuration is how long planning the run took (opening the source,
	// its statistics and the split), so a summary can show it apart from
	// the copy. In JSON, nanoseconds.
	PlanDuration time.Duration `json:"plan_duration_ns,omitempty"`
	Rows         int64         `json:"rows"`
	Bytes        int64         `json:"bytes"`
	BadRows      int64         `json:"bad_rows,omitempty"`
	Error        string        `json:"error,omitempty"`
	// Trigger says what started the run (manual, run, cron, after);
	// Scheduled is the tick a cron fire was for and Ticks all those it
	// stands for; Upstream the upstream runs an `after` fire consumed.
	// Queued is when the trigger was queued and FirstStarted when the
	// first partition was placed: the fire lag is visible per run.
	Trigger      string            `json:"trigger,omitempty"`
	Scheduled    time.Time         `json:"scheduled,omitzero"`
	Ticks        TickSpan          `json:"ticks,omitzero"`
	Upstream     map[string]string `json:"upstream,omitempty"`
	Queued       time.Time         `json:"queued,omitzero"`
	FirstStarted time.Time         `json:"first_started,omitzero"`
	// QueueEntry names the trigger that started the run, or last continued
	// it (what a trigger's answer gave), so the one who triggered it can
	// find it.
	QueueEntry string `json:"queue_entry,omitempty"`
}

// ErrNotFound is returned by State lookups of runs or partitions that do
// not exist.
var ErrNotFound = errors.New("not found")

// ErrLeaseLost is returned once a partition's lease has been taken over:
// by a fenced checkpoint save, by a sink whose record carries a newer lease.
// It is never retried.
var ErrLeaseLost = connectors.ErrLeaseLost

// Lease is a partition held for execution. An executor writes nothing to
// the coordinator store but through it.
type Lease interface {
	// Epoch numbers the partition's leases; see PartitionRecord.Lease.
	Epoch() int64
	// Save stores cp as the partition's progress while the lease is held.
	// Once it has been taken over, Save writes nothing and returns an
	// error wrapping ErrLeaseLost.
	Save(ctx context.Context, cp Checkpoint) error
	// Check returns an error wrapping ErrLeaseLost once the lease has been
	// taken over, nil while it is held.
	Check(ctx context.Context) error
}

// State is what a run of a whole job needs: the run record with its plan,
// partitions taken under leases, and the job's incremental high-water mark.
// The coordinator implements it over ZooKeeper or the embedded store.
type State interface {
	// ActiveRun returns the job's unfinished run (running or failed), or
	// ErrNotFound.
	ActiveRun(ctx context.Context, job string) (*RunRecord, error)
	// CreateRun stores a new run with its partitions, all pending.
	CreateRun(ctx context.Context, run *RunRecord, parts []PartitionRecord) error
	UpdateRun(ctx context.Context, run *RunRecord) error
	Partitions(ctx context.Context, job, run string) ([]PartitionRecord, error)
	// TakePartition gives a partition to owner under a new lease (Running,
	// one more attempt) and returns the lease with the partition as it now
	// is, its last checkpoint included.
	TakePartition(ctx context.Context, job, run, id, owner string) (Lease, PartitionRecord, error)
	// EndPartition records what became of a partition under lease epoch:
	// Done, Failed (with the reason), or Pending (given back, to be taken
	// again). Once another lease holds it, it writes nothing and returns an
	// error wrapping ErrLeaseLost: the outcome is the new holder's to tell.
	EndPartition(ctx context.Context, job, run, id string, epoch int64, state, reason string) error
	// FinishRun records the run's outcome in the history. A succeeded or
	// abandoned run's active state is dropped (on success with a cursor
	// window the high-water mark moves to Mark{run.CursorUpTo,
	// run.CursorKeys} in the same step); a failed run's stays, to be
	// continued.
	FinishRun(ctx context.Context, run *RunRecord) error
	// HighWater returns the job's incremental high-water mark (zero: none yet).
	HighWater(ctx context.Context, job string) (Mark, error)
}

// Mark is a job's incremental high-water mark: the upper end of its last
// succeeded run's window, and the keys of the rows at exactly that cursor
// value that the job has copied (kept for sinks that do not upsert, so
// the next run, which reads from the mark inclusive, skips them).
type Mark struct {
	Cursor connectors.Key   `json:"cursor,omitempty"`
	Keys   []connectors.Key `json:"keys,omitempty"`
}
