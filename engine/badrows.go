package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/datashift/datashift/connectors"
)

// Budget counts the bad rows of a run against the job's bad_rows.max. A nil
// *Budget allows none.
type Budget struct {
	mu   sync.Mutex
	max  int64
	used int64
}

// NewBudget returns a budget of max rows of which used are spent already
// (by the partitions of a resumed run); nil when max is 0.
func NewBudget(max, used int64) *Budget {
	if max <= 0 {
		return nil
	}
	return &Budget{max: max, used: used}
}

// Allows reports whether any bad row may be set aside at all.
func (b *Budget) Allows() bool { return b != nil }

// Take uses one row of the budget; false when it is spent.
func (b *Budget) Take() bool { return b.TakeN(1) }

// TakeN uses n rows of the budget; false, taking none, when fewer are left.
func (b *Budget) TakeN(n int64) bool {
	if b == nil {
		return n <= 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// Used is how many bad rows were set aside.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *Budget) String() string {
	if b == nil {
		return "bad_rows.max is 0"
	}
	return fmt.Sprintf("bad_rows.max is %d", b.max)
}

// Reject is a row the sink refused, with why.
type Reject struct {
	Job       string            `json:"job"`
	Run       string            `json:"run"`
	Partition string            `json:"partition"`
	Key       connectors.Key    `json:"key"`
	Reason    string            `json:"reason"`
	Row       map[string]string `json:"row"`
}

// RejectLog keeps rejected rows where a user can fix and replay them.
type RejectLog interface {
	Reject(r Reject) error
}

// RejectFile appends rejects as JSON lines; safe for concurrent use.
type RejectFile struct {
	mu sync.Mutex
	f  *os.File
}

// OpenRejectFile opens (appending) the file rejects go to.
func OpenRejectFile(path string) (*RejectFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bad_rows.reject_file: %w", err)
	}
	return &RejectFile{f: f}, nil
}

func (r *RejectFile) Reject(rej Reject) error {
	b, err := json.Marshal(rej)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err = r.f.Write(append(b, '\n'))
	return err
}

func (r *RejectFile) Close() error { return r.f.Close() }
