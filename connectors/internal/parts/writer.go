package parts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// Encoder writes record batches into one part file in a file format.
type Encoder interface {
	Write(rec arrow.RecordBatch) error
	// Close finishes the file (footer, buffered bytes). It must not close the
	// io.Writer it was given: the writer does that after fsync.
	Close() error
}

// NewEncoder starts an encoder writing to w.
type NewEncoder func(w io.Writer) (Encoder, error)

// Writer is the connectors.Writer of a file sink: one part file per Commit
// that has rows, one record file per Commit.
type Writer struct {
	l      Layout
	spec   connectors.WriterSpec
	n      names
	seq    int      // the next commit's number
	older  []string // records this writer's next commit supersedes
	newEnc NewEncoder

	part *os.File // the .tmp part being written, nil before the first Write of a commit
	tmp  string   // its base name
	enc  Encoder
	err  error // a failed commit: the writer takes no more
}

var _ connectors.Writer = (*Writer)(nil)

// afterLeaseCheck, when set by a test, runs inside the window between a
// commit's lease check and its renames.
var afterLeaseCheck func()

// OpenWriter returns a writer of spec's partition; its first commit is
// numbered past every part and record of the partition, so it overwrites
// nothing. The partition must be claimed (Claim) under the lease its
// commits carry; the lease is checked at each Commit.
func (l Layout) OpenWriter(spec connectors.WriterSpec, newEnc NewEncoder) (*Writer, error) {
	n := namesOf(spec.Job, spec.Run, spec.Partition)
	if err := os.MkdirAll(l.logDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create dataset directory: %w", err)
	}
	w := &Writer{l: l, spec: spec, n: n, newEnc: newEnc}
	entries, err := os.ReadDir(l.Dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.Dir, err)
	}
	for _, e := range entries {
		if seq, _, ok := n.partSeq(e.Name(), l.Ext); ok && seq > w.seq {
			w.seq = seq
		}
	}
	recs, err := l.records(n)
	if err != nil {
		return nil, fmt.Errorf("partition %s: %w", n, err)
	}
	for _, r := range recs {
		w.seq = max(w.seq, r.seq)
		w.older = append(w.older, r.name)
	}
	w.seq++
	return w, nil
}

// Write appends rec to the current part, starting one if needed.
func (w *Writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.err != nil {
		return w.err
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if w.part == nil {
		w.tmp = w.n.tmpPartName(w.l.Ext, w.seq, w.spec.Lease)
		f, err := os.OpenFile(filepath.Join(w.l.Dir, w.tmp), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("create part: %w", err)
		}
		enc, err := w.newEnc(onlyWriter{f})
		if err != nil {
			f.Close()
			remove(f.Name())
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		w.part, w.enc = f, enc
	}
	if err := w.enc.Write(rec); err != nil {
		return fmt.Errorf("%s: %w", w.part.Name(), err)
	}
	return nil
}

// onlyWriter hides Close: encoders that close their writer must not close
// the file, which the writer fsyncs first.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// Commit makes the rows written since the last Commit durable together
// with rec, in the steps of the package doc. When it fails the writer
// keeps nothing of the commit and takes no more: open a new one.
func (w *Writer) Commit(ctx context.Context, rec connectors.CommitRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.err != nil {
		return w.err
	}
	if err := w.commit(rec); err != nil {
		w.abort()
		w.err = fmt.Errorf("partition %s: an earlier commit failed: %w", w.n, err)
		return err
	}
	return nil
}

func (w *Writer) commit(rec connectors.CommitRecord) error {
	var partName string
	if w.part != nil {
		partName = w.n.partName(w.l.Ext, w.seq)
		enc := w.enc
		w.enc = nil
		if err := enc.Close(); err != nil {
			return fmt.Errorf("%s: %w", w.part.Name(), err)
		}
		if err := w.part.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", w.part.Name(), err)
		}
		if err := w.part.Close(); err != nil {
			return fmt.Errorf("close %s: %w", w.part.Name(), err)
		}
		if _, err := os.Lstat(filepath.Join(w.l.Dir, partName)); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("partition %s: part %s exists already; not overwriting it", w.n, partName)
		}
	}
	if err := w.checkLease(rec.Lease); err != nil {
		return err
	}
	if afterLeaseCheck != nil {
		afterLeaseCheck()
	}
	rec.Job, rec.Run, rec.Partition = w.spec.Job, w.spec.Run, w.spec.Partition
	b, err := json.Marshal(recordFileBody{CommitRecord: rec, Part: partName, Committed: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("partition %s: encode commit record: %w", w.n, err)
	}
	recName := w.n.recordName(w.seq, rec.Lease)
	if err := writeFile(w.l.logDir(), recName, recName+".tmp", b); err != nil {
		return fmt.Errorf("partition %s: write commit record: %w", w.n, err)
	}
	if partName != "" {
		landed, err := w.land(partName)
		if landed {
			w.part, w.tmp = nil, "" // in place: abort must not touch it
		}
		if err != nil {
			if !landed {
				// The record names a part that is not there: an unfinished
				// commit. Remove it now rather than at the next claim.
				if remove(filepath.Join(w.l.logDir(), recName)) == nil {
					syncDir(w.l.logDir())
				}
				if lerr := w.checkLease(rec.Lease); lerr != nil {
					return fmt.Errorf("%w (%v)", lerr, err)
				}
			}
			return err
		}
	}
	// The commit has landed: the records before it say nothing more.
	for _, name := range w.older {
		remove(filepath.Join(w.l.logDir(), name)) // best effort: the next claim removes what is left
	}
	w.older = []string{recName}
	w.seq++
	return nil
}

// land renames the finished part to its final name, the commit point, and
// fsyncs the directory. landed says whether the rename happened, even when
// err is set (the fsync failed after it).
func (w *Writer) land(partName string) (landed bool, err error) {
	tmp, final := filepath.Join(w.l.Dir, w.tmp), filepath.Join(w.l.Dir, partName)
	if err := os.Rename(tmp, final); err != nil {
		// A rename reported failed may still have happened (a retried
		// request on a network file system): believe the directory.
		_, terr := os.Lstat(tmp)
		_, ferr := os.Lstat(final)
		if !errors.Is(terr, os.ErrNotExist) || ferr != nil {
			return false, fmt.Errorf("partition %s: commit part: %w", w.n, err)
		}
	}
	return true, syncDir(w.l.Dir)
}

// checkLease fails with connectors.ErrLeaseLost unless the lease file
// holds lease.
func (w *Writer) checkLease(lease int64) error {
	lf, ok, err := w.l.readLease(w.n)
	switch {
	case err != nil:
		return fmt.Errorf("partition %s: read lease: %w", w.n, err)
	case !ok:
		return fmt.Errorf("partition %s: commit under lease %d, but the partition is not claimed (no lease file): %w", w.n, lease, connectors.ErrLeaseLost)
	case lf.Lease != lease:
		return fmt.Errorf("partition %s: commit under lease %d, the lease file holds lease %d: %w", w.n, lease, lf.Lease, connectors.ErrLeaseLost)
	}
	return nil
}

// abort removes the unfinished part.
func (w *Writer) abort() {
	if w.enc != nil {
		w.enc.Close() // release its buffers; the file goes anyway
		w.enc = nil
	}
	if w.part != nil {
		w.part.Close()
		remove(filepath.Join(w.l.Dir, w.tmp))
		w.part, w.tmp = nil, ""
	}
}

// Close abandons an uncommitted part.
func (w *Writer) Close() error {
	w.abort()
	if w.err == nil {
		w.err = errors.New("writer closed")
	}
	return nil
}
