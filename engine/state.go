package engine

import (
	"context"
	"errors"
	"time"

	"github.com/datashift/datashift/connectors"
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

// Checkpoint is how far a partition got: every row of its range with a key
// up to LastKey is committed in the sink, and nothing past it is (after the
// sink's resume cleanup). It is saved after each sink commit.
type Checkpoint struct {
	LastKey   connectors.Key `json:"last_key,omitempty"`
	Rows      int64          `json:"rows"`
	Bytes     int64          `json:"bytes"`
	SinkState []byte         `json:"sink_state,omitempty"`
	// Started is set before the first write of the first attempt: from then
	// on the sink may hold rows of this partition, so a new attempt must
	// clean up first.
	Started bool   `json:"started,omitempty"`
	BadRows int64  `json:"bad_rows,omitempty"`
	Commits int64  `json:"commits,omitempty"`
	Updated string `json:"updated,omitempty"`
}

// PartitionRecord is a partition of a run as the coordinator store keeps it.
type PartitionRecord struct {
	ID         string           `json:"id"`
	Range      connectors.Range `json:"range"`
	EstRows    int64            `json:"est_rows"`
	State      string           `json:"state"`
	Owner      string           `json:"owner,omitempty"`
	Attempts   int              `json:"attempts"`
	Error      string           `json:"error,omitempty"`
	Checkpoint Checkpoint       `json:"checkpoint"`
}

// RunRecord is one run of a job.
type RunRecord struct {
	Job      string    `json:"job"`
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitempty"`
	// Prepared is set once the sink is prepared (created, truncated), so a
	// resumed run does not truncate what earlier attempts wrote.
	Prepared bool   `json:"prepared,omitempty"`
	Scheme   string `json:"scheme"`
	Reason   string `json:"reason"`
	// Cursor is the incremental window of this run: rows with
	// After < cursor <= UpTo. UpTo becomes the job's high-water mark when
	// the run succeeds.
	CursorAfter connectors.Key `json:"cursor_after,omitempty"`
	CursorUpTo  connectors.Key `json:"cursor_up_to,omitempty"`
	Snapshot    string         `json:"snapshot,omitempty"`
	Rows        int64          `json:"rows"`
	Bytes       int64          `json:"bytes"`
	BadRows     int64          `json:"bad_rows,omitempty"`
	Error       string         `json:"error,omitempty"`
}

// ErrNotFound is returned by State lookups of runs or partitions that do
// not exist.
var ErrNotFound = errors.New("not found")

// Checkpoints is what an executor needs: its partition's record, read at the
// start of an attempt and saved after each commit.
type Checkpoints interface {
	LoadPartition(ctx context.Context, job, run, id string) (PartitionRecord, error)
	SavePartition(ctx context.Context, job, run string, p PartitionRecord) error
}

// State is what a run of a whole job needs on top of checkpoints: the run
// record with its plan, and the job's incremental high-water mark. The
// coordinator implements it over ZooKeeper or the embedded store.
type State interface {
	Checkpoints
	// ActiveRun returns the job's unfinished run (running or failed), or
	// ErrNotFound.
	ActiveRun(ctx context.Context, job string) (*RunRecord, error)
	// CreateRun stores a new run with its partitions, all pending.
	CreateRun(ctx context.Context, run *RunRecord, parts []PartitionRecord) error
	UpdateRun(ctx context.Context, run *RunRecord) error
	Partitions(ctx context.Context, job, run string) ([]PartitionRecord, error)
	// FinishRun records the run's outcome in the history. A succeeded or
	// abandoned run's active state is dropped (on success with a cursor
	// window the high-water mark moves to run.CursorUpTo in the same step);
	// a failed run's stays, to be continued.
	FinishRun(ctx context.Context, run *RunRecord) error
	// HighWater returns the job's incremental high-water mark (nil: none yet).
	HighWater(ctx context.Context, job string) (connectors.Key, error)
}
