package partitioner

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/datashift/datashift/connectors"
)

// Schemes a plan can use.
const (
	// SchemeKeyRange splits by key: half-open key ranges, plus a NULL-key
	// partition when the key is nullable.
	SchemeKeyRange = "key-range"
	// SchemePages splits a source with no usable key by physical location.
	SchemePages = "pages"
	// SchemeSingle copies the source as one range: no key and no pages, or
	// no statistics to split by (plus the NULL-key partition when keyed and
	// nullable).
	SchemeSingle = "single"
)

// KeyColumn is one column of the key the source orders and splits by.
type KeyColumn struct {
	Name     string `json:"name"`
	Nullable bool   `json:"nullable,omitempty"`
}

// Input is everything Split needs to know about a source. It is plain data so
// that planning can run anywhere (the leader, a test) with no I/O.
type Input struct {
	// Key lists the key columns in key order; empty when the source has no
	// usable key (the source's SourceConfig.Key is empty too).
	Key   []KeyColumn
	Stats connectors.Stats

	// TargetRows and TargetBytes are the wanted size of one partition; when
	// both are set, the one that gives more partitions wins. Both zero means
	// "as many partitions as MaxPartitions allows".
	TargetRows  int64
	TargetBytes int64
	// Workers is how many partitions run at once (the job's parallelism).
	// A table the target size leaves in fewer partitions is split further,
	// one partition per worker, as long as each keeps MinWorkerRows rows:
	// otherwise the workers but one sit idle.
	Workers int
	// MaxPartitions caps the plan, typically the free slots in the cluster.
	// The NULL-key partition counts against it, except that a nullable key
	// always gets two partitions (its non-NULL rows and its NULL rows) even
	// when MaxPartitions is 1: no single range selects both.
	MaxPartitions int
}

// Partition is one unit of work: a range of the source and its estimated size.
type Partition struct {
	// ID is stable for a plan and sorts in plan order ("p0000", "p0001", …):
	// key ranges in key order, then the NULL-key partition.
	ID      string           `json:"id"`
	Range   connectors.Range `json:"range"`
	EstRows int64            `json:"est_rows"`
}

// Plan is the partitioning of one source for one run.
type Plan struct {
	Scheme string `json:"scheme"`
	// Reason says, for an operator, why the plan has this shape.
	Reason     string      `json:"reason"`
	Key        []KeyColumn `json:"key,omitempty"`
	Partitions []Partition `json:"partitions"`
}

// ErrInvalidInput is wrapped by every error Split returns for an Input it
// cannot plan (bad limits, statistics that contradict the key order). It is
// not retryable: the same input fails the same way.
var ErrInvalidInput = errors.New("partitioner: invalid input")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidInput, fmt.Sprintf(format, args...))
}

// Split plans the partitions of a source. It does no I/O; its result always
// passes Plan.Validate.
func Split(in Input) (Plan, error) {
	if err := checkInput(in); err != nil {
		return Plan{}, err
	}
	if len(in.Key) == 0 {
		return splitUnkeyed(in), nil
	}
	return splitKeyed(in), nil
}

// Unsplit plans a source as one range (plus the NULL-key partition when the
// key is nullable), for sources that give no statistics; reason says why.
func Unsplit(key []KeyColumn, reason string) Plan {
	var ranges []connectors.Range
	ranges = append(ranges, connectors.Range{})
	if nullable(key) {
		ranges = append(ranges, connectors.Range{Nulls: true})
		reason += "; plus one partition for NULL keys"
	}
	return Plan{Scheme: SchemeSingle, Reason: reason, Key: key, Partitions: number(ranges, nil)}
}

func checkInput(in Input) error {
	switch {
	case in.MaxPartitions < 1:
		return invalid("max partitions is %d, want at least 1", in.MaxPartitions)
	case in.TargetRows < 0 || in.TargetBytes < 0:
		return invalid("negative target size (%d rows, %d bytes)", in.TargetRows, in.TargetBytes)
	}
	seen := map[string]bool{}
	for _, c := range in.Key {
		if c.Name == "" || seen[c.Name] {
			return invalid("key columns %v: empty or repeated name", keyNames(in.Key))
		}
		seen[c.Name] = true
	}
	if len(in.Key) == 0 {
		return nil
	}
	// Every key Split compares must have one value per key column, no NULL
	// and one Go type per column: CompareKeys panics otherwise, and a bound
	// with a NULL would select nothing in SQL.
	types := make([]reflect.Type, len(in.Key))
	check := func(what string, k connectors.Key) error {
		if len(k) != len(in.Key) {
			return invalid("%s %s has %d values for key %v", what, k, len(k), keyNames(in.Key))
		}
		for i, v := range k {
			if v == nil {
				return invalid("%s %s has a NULL in column %q", what, k, in.Key[i].Name)
			}
			t := reflect.TypeOf(v)
			if types[i] == nil {
				types[i] = t
			} else if t != types[i] {
				return invalid("%s %s: column %q is %v, earlier keys had %v", what, k, in.Key[i].Name, t, types[i])
			}
			if !orderable(v) {
				return invalid("%s %s: column %q has unsupported key type %v", what, k, in.Key[i].Name, t)
			}
		}
		return nil
	}
	st := in.Stats
	if (st.Min == nil) != (st.Max == nil) {
		return invalid("stats have only one of min and max")
	}
	if st.Min != nil {
		if err := check("min", st.Min); err != nil {
			return err
		}
		if err := check("max", st.Max); err != nil {
			return err
		}
		if connectors.CompareKeys(st.Min, st.Max) > 0 {
			return invalid("stats min %s is above max %s", st.Min, st.Max)
		}
	}
	for i, k := range st.Sample {
		if err := check("sampled key", k); err != nil {
			return err
		}
		// An unsorted sample means the store orders keys differently from
		// CompareKeys (a collation, most likely); ranges computed here would
		// then overlap or leave gaps in the store, so refuse to plan.
		if i > 0 && connectors.CompareKeys(st.Sample[i-1], k) > 0 {
			return invalid("sample is not in key order at %d: %s before %s (does the source order text by its bytes?)",
				i, st.Sample[i-1], k)
		}
	}
	return nil
}

// orderable reports whether v can bound a range. NaN is refused: it compares
// equal to everything, so it cannot.
func orderable(v any) bool {
	switch x := v.(type) {
	case int64, uint64, string, []byte, bool, connectors.UUID, time.Time:
		return true
	case float64:
		return !math.IsNaN(x)
	}
	return false
}

func splitUnkeyed(in Input) Plan {
	st := in.Stats
	rows := st.Rows + st.NullRows
	if st.PageCount <= 0 {
		p := Unsplit(nil, "no usable key and no page count: one partition")
		p.Partitions[0].EstRows = max(rows, 0)
		return p
	}
	n, why := count(in, rows, int64(in.MaxPartitions))
	n = min(n, st.PageCount) // no empty page ranges
	ranges := make([]connectors.Range, n)
	est := make([]int64, n)
	per := st.PageCount / n
	extra := st.PageCount % n // the first `extra` ranges take one page more
	var lo int64
	for i := range n {
		size := per
		if i < extra {
			size++
		}
		hi := lo + size
		if i == n-1 {
			hi = 0 // unbounded: the table may have grown since it was measured
		}
		ranges[i] = connectors.Range{Pages: &connectors.PageRange{Lo: lo, Hi: hi}}
		est[i] = share(rows, lo, lo+size, st.PageCount)
		lo += size
	}
	method := ""
	if st.Method != "" {
		method = ", " + st.Method
	}
	reason := fmt.Sprintf("no usable key: %d partitions of ~%d pages each (%d pages%s); %s", n, per, st.PageCount, method, why)
	if n == 1 {
		reason = fmt.Sprintf("no usable key: one partition (%d pages%s); %s", st.PageCount, method, why)
	}
	return Plan{Scheme: SchemePages, Reason: reason, Partitions: number(ranges, est)}
}

// share is rows × (hi-lo)/total, computed so the shares of adjacent
// intervals add up to rows exactly.
func share(rows, lo, hi, total int64) int64 {
	if total <= 0 || rows <= 0 {
		return 0
	}
	at := func(x int64) int64 { return int64(float64(rows)*float64(x)/float64(total) + 0.5) }
	return at(hi) - at(lo)
}

// count returns how many partitions the target size asks for, capped by
// slots, and the words that explain it.
func count(in Input, rows, slots int64) (int64, string) {
	var n int64
	var why []string
	if in.TargetRows > 0 && rows > 0 {
		n = ceilDiv(rows, in.TargetRows)
		why = append(why, fmt.Sprintf("~%d rows / target %d rows", rows, in.TargetRows))
	}
	if in.TargetBytes > 0 && in.Stats.Bytes > 0 {
		nb := ceilDiv(in.Stats.Bytes, in.TargetBytes)
		n = max(n, nb)
		why = append(why, fmt.Sprintf("~%d bytes / target %d bytes", in.Stats.Bytes, in.TargetBytes))
	}
	if len(why) == 0 {
		if in.TargetRows > 0 || in.TargetBytes > 0 {
			return 1, "size unknown: one partition"
		}
		return slots, fmt.Sprintf("no target size: one per free slot (%d)", slots)
	}
	reason := strings.Join(why, ", ")
	n = max(n, 1)
	if busy := min(int64(in.Workers), rows/MinWorkerRows); busy > n {
		n = busy
		reason += fmt.Sprintf(", raised to %d to keep %d workers busy (at least %d rows each)", n, in.Workers, MinWorkerRows)
	}
	if n > slots {
		return slots, fmt.Sprintf("%s wants %d, capped at %d", reason, n, slots)
	}
	return n, reason
}

// MinWorkerRows is the fewest rows a partition gets for the sake of
// keeping a worker busy: below it, a partition's fixed cost (its plan
// entry, lease, sink commit record and connection) outweighs the copying.
const MinWorkerRows = 10000

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// number gives ranges their stable IDs; est may be nil.
func number(ranges []connectors.Range, est []int64) []Partition {
	width := max(4, len(fmt.Sprint(len(ranges)-1)))
	out := make([]Partition, len(ranges))
	for i, r := range ranges {
		out[i] = Partition{ID: fmt.Sprintf("p%0*d", width, i), Range: r}
		if est != nil {
			out[i].EstRows = est[i]
		}
	}
	return out
}

func nullable(key []KeyColumn) bool {
	for _, c := range key {
		if c.Nullable {
			return true
		}
	}
	return false
}

func keyNames(key []KeyColumn) []string {
	out := make([]string, len(key))
	for i, c := range key {
		out[i] = c.Name
	}
	return out
}
