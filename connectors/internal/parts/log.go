package parts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/datashift/datashift/connectors"
)

// leaseFile is what a partition's lease file holds.
type leaseFile struct {
	Job       string    `json:"job"`
	Run       string    `json:"run"`
	Partition string    `json:"partition"`
	Lease     int64     `json:"lease"`
	Claimed   time.Time `json:"claimed"`
}

// recordFileBody is what a commit's record file holds: the record, and the part
// the commit renamed into place ("" for a commit with no rows).
type recordFileBody struct {
	connectors.CommitRecord
	Part      string    `json:"part,omitempty"`
	Committed time.Time `json:"committed"`
}

// record is one record file of a partition, as found in the log.
type record struct {
	name  string
	seq   int
	lease int64
}

// after orders records by commit number, then lease: for the same commit
// number the newer holder's record wins (see the package doc).
func (r record) after(o record) bool {
	return r.seq > o.seq || r.seq == o.seq && r.lease > o.lease
}

func (n names) same(job, run, partition string) bool {
	return job == n.job && run == n.run && partition == n.partition
}

func (n names) String() string { return fmt.Sprintf("%s/%s/%s", n.job, n.run, n.partition) }

// readLease returns the partition's lease file; ok is false when there is
// none.
func (l Layout) readLease(n names) (lf leaseFile, ok bool, err error) {
	path := filepath.Join(l.logDir(), n.leaseName())
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return lf, false, nil
	}
	if err != nil {
		return lf, false, err
	}
	if err := json.Unmarshal(b, &lf); err != nil {
		return lf, false, fmt.Errorf("%s: %w", path, err)
	}
	if !n.same(lf.Job, lf.Run, lf.Partition) {
		return lf, false, fmt.Errorf("%s belongs to partition %s/%s/%s: its name collides with %s's in file names; rename one",
			path, lf.Job, lf.Run, lf.Partition, n)
	}
	return lf, true, nil
}

// records lists the partition's record files, newest first.
func (l Layout) records(n names) ([]record, error) {
	entries, err := os.ReadDir(l.logDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []record
	for _, e := range entries {
		m := anyRecord.FindStringSubmatch(e.Name())
		if m == nil || m[1] != n.safeJob || m[2] != n.safeRun || m[3] != n.safe {
			continue
		}
		seq, err1 := strconv.Atoi(m[4])
		lease, err2 := strconv.ParseInt(m[5], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, record{name: e.Name(), seq: seq, lease: lease})
	}
	slices.SortFunc(out, func(a, b record) int {
		switch {
		case a.after(b):
			return -1
		case b.after(a):
			return 1
		}
		return 0
	})
	return out, nil
}

func (l Layout) readRecord(n names, r record) (recordFileBody, error) {
	path := filepath.Join(l.logDir(), r.name)
	var body recordFileBody
	b, err := os.ReadFile(path)
	if err != nil {
		return body, err
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return body, fmt.Errorf("%s: %w", path, err)
	}
	if !n.same(body.Job, body.Run, body.Partition) {
		return body, fmt.Errorf("%s belongs to partition %s/%s/%s: its name collides with %s's in file names; rename one",
			path, body.Job, body.Run, body.Partition, n)
	}
	return body, nil
}

// finished reports whether the commit of body landed: it had no rows, or
// its part is in place.
func (l Layout) finished(body recordFileBody) (bool, error) {
	if body.Part == "" {
		return true, nil
	}
	_, err := os.Lstat(filepath.Join(l.Dir, body.Part))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, err
}

// Claim takes spec's partition for spec.Lease (see connectors.CommitLog):
// it refuses with connectors.ErrLeaseLost when the lease file holds a newer
// lease, writes the new one, removes what earlier holders left unfinished
// (.tmp parts first, then records whose part is missing) and returns the
// record of the last finished commit, with Lease set to spec.Lease
// (Commits 0 when there is none).
func (l Layout) Claim(spec connectors.WriterSpec) (connectors.CommitRecord, error) {
	n := namesOf(spec.Job, spec.Run, spec.Partition)
	none := connectors.CommitRecord{Job: spec.Job, Run: spec.Run, Partition: spec.Partition, Lease: spec.Lease}
	if err := os.MkdirAll(l.logDir(), 0o755); err != nil {
		return none, fmt.Errorf("create commit log folder: %w", err)
	}
	old, ok, err := l.readLease(n)
	if err != nil {
		return none, fmt.Errorf("partition %s: %w", n, err)
	}
	if ok && old.Lease > spec.Lease {
		return none, fmt.Errorf("partition %s: lease %d claimed it after lease %d: %w", n, old.Lease, spec.Lease, connectors.ErrLeaseLost)
	}
	if !ok || old.Lease != spec.Lease {
		lf := leaseFile{Job: spec.Job, Run: spec.Run, Partition: spec.Partition, Lease: spec.Lease, Claimed: time.Now().UTC()}
		b, _ := json.Marshal(lf) // strings, an int and a time cannot fail
		name := n.leaseName()
		if err := writeFile(l.logDir(), name, fmt.Sprintf("%s.%d.tmp", name, spec.Lease), b); err != nil {
			return none, fmt.Errorf("partition %s: write lease: %w", n, err)
		}
	}
	// From here on older holders' commits fail their lease check, except a
	// commit already past it: removing the .tmp parts before reading the
	// records makes such a commit either land before the scan below or not
	// at all (see the package doc).
	if err := l.removeUnfinished(n); err != nil {
		return none, fmt.Errorf("partition %s: %w", n, err)
	}
	recs, err := l.records(n)
	if err != nil {
		return none, fmt.Errorf("partition %s: %w", n, err)
	}
	var last *recordFileBody
	var lost *recordFileBody // the newest unfinished record, if nothing finished
	var drop []string
	for _, r := range recs {
		if last != nil {
			drop = append(drop, r.name) // superseded by last
			continue
		}
		body, err := l.readRecord(n, r)
		if err != nil {
			return none, fmt.Errorf("partition %s: %w", n, err)
		}
		done, err := l.finished(body)
		if err != nil {
			return none, fmt.Errorf("partition %s: %w", n, err)
		}
		if done {
			last = &body
			continue
		}
		if lost == nil {
			lost = &body
		}
		drop = append(drop, r.name)
	}
	if last == nil && lost != nil && lost.Commits > 1 {
		// An unfinished commit is always preceded by a finished record that
		// is kept until a newer commit lands, unless parts or records were
		// removed by hand: starting over would write the rows again.
		return none, fmt.Errorf("partition %s: the log's last record (commit %d) names part %s, which is missing, and no earlier record is left; "+
			"were parts removed by hand? Remove the partition's files from %s to start it over",
			n, lost.Commits, lost.Part, l.logDir())
	}
	for _, name := range drop {
		if err := remove(filepath.Join(l.logDir(), name)); err != nil {
			return none, fmt.Errorf("partition %s: remove unfinished record: %w", n, err)
		}
	}
	if len(drop) > 0 {
		if err := syncDir(l.logDir()); err != nil {
			return none, err
		}
	}
	if last == nil {
		return none, nil
	}
	rec := last.CommitRecord
	rec.Job, rec.Run, rec.Partition, rec.Lease = spec.Job, spec.Run, spec.Partition, spec.Lease
	return rec, nil
}

// removeUnfinished removes the partition's .tmp parts and .tmp records.
func (l Layout) removeUnfinished(n names) error {
	removed, err := removeIf(l.Dir, func(name string) bool {
		_, tmp, ok := n.partSeq(name, l.Ext)
		return ok && tmp
	})
	if err != nil {
		return fmt.Errorf("remove unfinished part: %w", err)
	}
	if removed {
		if err := syncDir(l.Dir); err != nil {
			return err
		}
	}
	prefix := n.logPrefix() + "+"
	removed, err = removeIf(l.logDir(), func(name string) bool {
		return strings.HasPrefix(name, prefix) && strings.HasSuffix(name, ".json.tmp")
	})
	if err != nil {
		return fmt.Errorf("remove unfinished record: %w", err)
	}
	if removed {
		return syncDir(l.logDir())
	}
	return nil
}

// removeIf removes the files of dir whose names match.
func removeIf(dir string, match func(string) bool) (removed bool, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.IsDir() || !match(e.Name()) {
			continue
		}
		if err := remove(filepath.Join(dir, e.Name())); err != nil {
			return removed, err
		}
		removed = true
	}
	return removed, nil
}

// Forget removes the records and lease files of a job's run, of every
// partition; parts stay. A file whose name matches but whose content names
// another job or run (their names collide in file names) stays too.
func (l Layout) Forget(job, run string) error {
	prefix := SafePartition(job) + "+" + SafePartition(run) + "+"
	removed, err := removeIf(l.logDir(), func(name string) bool {
		if !strings.HasPrefix(name, prefix) || !anyLogFile.MatchString(name) {
			return false
		}
		if strings.HasSuffix(name, ".tmp") {
			return true
		}
		var owner struct{ Job, Run string }
		b, err := os.ReadFile(filepath.Join(l.logDir(), name))
		return err != nil || json.Unmarshal(b, &owner) != nil || owner.Job == job && owner.Run == run
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("forget run %s of job %s: %w", run, job, err)
	}
	if removed {
		return syncDir(l.logDir())
	}
	return nil
}

// Log is the connectors.CommitLog of a file sink over its Layout; a sink
// embeds it. Sink names the connector in errors.
type Log struct {
	Layout Layout
	Sink   string
}

var _ connectors.CommitLog = Log{}

func (g Log) Claim(_ context.Context, spec connectors.WriterSpec) (connectors.CommitRecord, error) {
	rec, err := g.Layout.Claim(spec)
	if err != nil {
		return rec, fmt.Errorf("%s sink %s: %w", g.Sink, g.Layout.Dir, err)
	}
	return rec, nil
}

// Forget removes the commit records of a run that is over; its parts stay.
func (g Log) Forget(_ context.Context, job, run string) error {
	if err := g.Layout.Forget(job, run); err != nil {
		return fmt.Errorf("%s sink %s: %w", g.Sink, g.Layout.Dir, err)
	}
	return nil
}
