// Package parts is the one way file sinks (parquet, csv) lay out, commit and
// resume their files.
//
// Each partition writes its own numbered part files in the dataset directory:
//
//	<dir>/<partition>-<seq>.<ext>      committed parts, seq = 000001, 000002, …
//	<dir>/<partition>-<seq>.<ext>.tmp  the part being written
//
// A Commit closes the current part: the .tmp file is fsynced, renamed to its
// final name and the directory fsynced, so a committed part is either wholly
// there or not at all. The sink state a Commit returns records how many parts
// the partition has committed ({"parts":N}); a resumed writer deletes parts
// numbered past N (committed by an attempt whose checkpoint was lost) and any
// .tmp leftovers, and continues with part N+1. That makes a file sink exactly
// once without ever reading its files back.
package parts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/datashift/datashift/connectors"
)

// seqDigits is the width of the part number in file names: fixed so that
// names sort in commit order.
const seqDigits = 6

// State is the sink state a file writer commits with its checkpoint.
type State struct {
	Parts int `json:"parts"` // committed parts, numbered 1..Parts
}

// ParseState decodes a sink state; an empty one is zero parts.
func ParseState(b []byte) (State, error) {
	var s State
	if len(b) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("sink state %q: %w", b, err)
	}
	if s.Parts < 0 {
		return s, fmt.Errorf("sink state %q: negative part count", b)
	}
	return s, nil
}

// Encode returns the JSON form of s.
func (s State) Encode() []byte {
	b, _ := json.Marshal(s) // a struct of one int cannot fail
	return b
}

// Layout is a dataset directory and the extension of its parts (".parquet").
type Layout struct {
	Dir string
	Ext string
}

// partName matches any part file of this layout's naming, committed or not.
// Only files that match are ever deleted: a dataset directory may hold files
// of other tools.
func (l Layout) partName() *regexp.Regexp {
	return regexp.MustCompile(`^(.+)-(\d{` + strconv.Itoa(seqDigits) + `,})` + regexp.QuoteMeta(l.Ext) + `(\.tmp)?$`)
}

// SafePartition turns a partition name into something usable in a file name:
// anything but letters, digits, '.', '_' and '-' becomes '_'.
func SafePartition(p string) string {
	if p == "" {
		return "part"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, p)
}

// Name is the committed file name of a partition's part seq.
func (l Layout) Name(partition string, seq int) string {
	return filepath.Join(l.Dir, fmt.Sprintf("%s-%0*d%s", SafePartition(partition), seqDigits, seq, l.Ext))
}

// file is one part file found in the directory.
type file struct {
	path      string
	partition string
	seq       int
	tmp       bool
}

func (l Layout) list() ([]file, error) {
	entries, err := os.ReadDir(l.Dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.Dir, err)
	}
	re := l.partName()
	var out []file
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := re.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		seq, err := strconv.Atoi(m[2])
		if err != nil {
			continue // more digits than an int holds: not ours
		}
		out = append(out, file{path: filepath.Join(l.Dir, e.Name()), partition: m[1], seq: seq, tmp: m[3] != ""})
	}
	return out, nil
}

// Prepare creates the dataset directory if needed and, when truncate, removes
// every part file of this layout's naming (other files stay).
func (l Layout) Prepare(truncate bool) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return fmt.Errorf("create dataset directory: %w", err)
	}
	if !truncate {
		return nil
	}
	files, err := l.list()
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	return syncDir(l.Dir)
}

// Restore brings a partition's files back to what resume says was committed
// and returns the number of the next part to write.
//
// With resume nil (a fresh partition) .tmp leftovers are removed, but a
// committed part of the same partition name is an error: it belongs to an
// earlier run, and overwriting it would lose its rows. With resume set, parts
// numbered past the state's count are removed; an empty state (the partition
// restarts from scratch) removes all of the partition's parts. An empty state
// with a LastKey is refused: the rows up to LastKey live in parts the state
// should have named, and deleting them would lose committed rows.
func (l Layout) Restore(partition string, resume *connectors.ResumePoint) (next int, err error) {
	var keep int
	if resume != nil {
		if len(resume.SinkState) == 0 && resume.LastKey != nil {
			return 0, fmt.Errorf("partition %s: resume after key %s without sink state: the committed parts are unknown", partition, resume.LastKey)
		}
		st, err := ParseState(resume.SinkState)
		if err != nil {
			return 0, fmt.Errorf("partition %s: %w", partition, err)
		}
		keep = st.Parts
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return 0, fmt.Errorf("create dataset directory: %w", err)
	}
	files, err := l.list()
	if err != nil {
		return 0, err
	}
	safe := SafePartition(partition)
	have := map[int]bool{}
	removed := false
	for _, f := range files {
		if f.partition != safe {
			continue
		}
		switch {
		case f.tmp || f.seq > keep:
			if resume == nil && !f.tmp {
				return 0, fmt.Errorf("partition %s: %s already exists (written by an earlier run?); use truncate mode or another directory", partition, f.path)
			}
			if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, fmt.Errorf("partition %s: remove uncommitted part: %w", partition, err)
			}
			removed = true
		default:
			have[f.seq] = true
		}
	}
	for seq := 1; seq <= keep; seq++ {
		if !have[seq] {
			return 0, fmt.Errorf("partition %s: committed part %s is missing", partition, l.Name(partition, seq))
		}
	}
	if removed {
		if err := syncDir(l.Dir); err != nil {
			return 0, err
		}
	}
	return keep + 1, nil
}

// Part is a part file being written. Write to it through W; Commit or Abort
// it exactly once.
type Part struct {
	f          *os.File
	tmp, final string
	W          io.Writer // the file, without Close: encoders that close their writer must not close it
}

// Create starts part seq of partition as a .tmp file.
func (l Layout) Create(partition string, seq int) (*Part, error) {
	final := l.Name(partition, seq)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create part: %w", err)
	}
	return &Part{f: f, tmp: tmp, final: final, W: onlyWriter{f}}, nil
}

type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// Path is the final name of the part.
func (p *Part) Path() string { return p.final }

// Commit makes the part durable under its final name.
func (p *Part) Commit() error {
	if err := p.f.Sync(); err != nil {
		p.f.Close()
		return fmt.Errorf("sync %s: %w", p.tmp, err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", p.tmp, err)
	}
	if err := os.Rename(p.tmp, p.final); err != nil {
		return fmt.Errorf("commit part: %w", err)
	}
	return syncDir(filepath.Dir(p.final))
}

// Abort closes and removes the unfinished part.
func (p *Part) Abort() error {
	p.f.Close()
	if err := os.Remove(p.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove abandoned part: %w", err)
	}
	return nil
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Files lists the data files a file source reads: path itself when it is a
// file, else the files in the directory whose names end in ext, sorted by
// name (committed parts only: .tmp files do not end in ext). The sorted
// order is what Range.Pages indexes.
func Files(path, ext string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ext) {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s files in %s", ext, path)
	}
	return out, nil
}

// ErrKeyRange is returned for ranges that need a key order.
var ErrKeyRange = errors.New("files have no key order: read them whole or by file range (Range.Pages)")

// FileRange returns the indexes [lo, hi) of the sorted files that r selects
// out of n: Range{} is all of them, Range.Pages a file index range (Hi 0 =
// unbounded), Range.Nulls none (there is no key, so no NULL key). Key
// bounds are refused with ErrKeyRange.
func FileRange(n int, r connectors.Range) (lo, hi int, err error) {
	if r.Lo != nil || r.Hi != nil || r.After != nil {
		return 0, 0, fmt.Errorf("range %s: %w", r, ErrKeyRange)
	}
	if r.Nulls {
		return 0, 0, nil
	}
	hi = n
	if r.Pages != nil {
		if r.Pages.Lo < 0 || r.Pages.Hi < 0 {
			return 0, 0, fmt.Errorf("range %s: negative file index", r)
		}
		if r.Pages.Lo < int64(n) {
			lo = int(r.Pages.Lo)
		} else {
			lo = n
		}
		if r.Pages.Hi > 0 && r.Pages.Hi < int64(n) {
			hi = int(r.Pages.Hi)
		}
	}
	if lo > hi {
		lo = hi
	}
	return lo, hi, nil
}

// CheckSourceConfig refuses what a file source cannot do: a file has no
// query, filter, key order or snapshot. typ names the connector in errors.
func CheckSourceConfig(typ string, cfg connectors.SourceConfig) error {
	switch {
	case cfg.Query != "":
		return fmt.Errorf("%s source: query is not supported (read a file or directory)", typ)
	case cfg.Where != "":
		return fmt.Errorf("%s source: where is not supported", typ)
	case len(cfg.Key) > 0:
		return fmt.Errorf("%s source: key %v: files have no key order; leave key empty (partitions are file ranges)", typ, cfg.Key)
	case cfg.Snapshot != "":
		return fmt.Errorf("%s source: snapshot is not supported", typ)
	case cfg.Cursor != nil:
		return fmt.Errorf("%s source: incremental cursors are not supported", typ)
	}
	return nil
}
