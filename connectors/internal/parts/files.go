package parts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/datashift/datashift/connectors"
)

// List returns the data files a file source reads: path itself when it is
// a file, else the files directly in the directory whose names end in ext,
// sorted by name, with their size and modification time. Folders are not
// entered, so the commit log (_datashift) is never an input, nor are .tmp
// parts (they do not end in ext). The sorted order is what Range.Pages
// and positions index. An empty directory is an empty list: a dataset a
// sink has prepared but not yet written to.
func List(path, ext string) ([]connectors.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []connectors.FileInfo{info(path, st)}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []connectors.FileInfo
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ext) {
			continue
		}
		p := filepath.Join(path, e.Name())
		st, err := os.Stat(p) // follows links, as reading will
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			continue
		}
		out = append(out, info(p, st))
	}
	slices.SortFunc(out, func(a, b connectors.FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func info(path string, st os.FileInfo) connectors.FileInfo {
	return connectors.FileInfo{Path: path, Size: st.Size(), ModTime: st.ModTime().UTC()}
}

// ErrKeyRange is returned for ranges that need a key order.
var ErrKeyRange = errors.New("files have no key order: read them whole or by file range (Range.Pages)")

// Positioned reports whether a file source reads r by position: any range
// without key bounds (files have no key, so every range they read is
// keyless).
func Positioned(r connectors.Range) bool { return r.Lo == nil && r.Hi == nil }

// Pos is a row's place in a file set: the file's index in the sorted list
// and the row's index in the file, both from 0. Its connectors.Key form,
// {int64(File), int64(Row)}, is the position file sources give.
type Pos struct {
	File int
	Row  int64
}

// Key is the position's connectors.Key form.
func (p Pos) Key() connectors.Key { return connectors.Key{int64(p.File), p.Row} }

// ParsePos reads a position back from its Key form.
func ParsePos(k connectors.Key) (Pos, error) {
	if len(k) == 2 {
		f, ok1 := k[0].(int64)
		row, ok2 := k[1].(int64)
		if ok1 && ok2 && f >= 0 && row >= 0 {
			return Pos{File: int(f), Row: row}, nil
		}
	}
	return Pos{}, fmt.Errorf("%s is not a file position (file index, row)", k)
}

// Span is what a range selects of a file set: the files [Lo, Hi), less
// the first Skip rows of file Lo.
type Span struct {
	Lo, Hi int
	Skip   int64
}

// Files returns the indexes of the span's files.
func (s Span) Files() []int {
	var out []int
	for i := s.Lo; i < s.Hi; i++ {
		out = append(out, i)
	}
	return out
}

// SkipOf is the number of rows to skip at the start of file i.
func (s Span) SkipOf(i int) int64 {
	if i == s.Lo {
		return s.Skip
	}
	return 0
}

// FileSpan returns the part of n files that r selects: Range{} is all of
// them, Range.Pages a file index range (Hi 0 = unbounded), Range.Nulls none
// (there is no key, so no NULL key); After, a position (see Pos), leaves
// the rows past it. Key bounds are refused with ErrKeyRange.
func FileSpan(n int, r connectors.Range) (Span, error) {
	if !Positioned(r) {
		return Span{}, fmt.Errorf("range %s: %w", r, ErrKeyRange)
	}
	if r.Nulls {
		return Span{}, nil
	}
	lo, hi := 0, n
	if r.Pages != nil {
		if r.Pages.Lo < 0 || r.Pages.Hi < 0 {
			return Span{}, fmt.Errorf("range %s: negative file index", r)
		}
		lo = int(min(r.Pages.Lo, int64(n)))
		if r.Pages.Hi > 0 && r.Pages.Hi < int64(n) {
			hi = int(r.Pages.Hi)
		}
	}
	lo = min(lo, hi)
	s := Span{Lo: lo, Hi: hi}
	if r.After != nil {
		p, err := ParsePos(r.After)
		if err != nil {
			return Span{}, fmt.Errorf("range %s resumed after %s: %w", r, r.After, err)
		}
		switch {
		case p.File >= hi:
			s.Lo = hi
		case p.File >= lo:
			s.Lo, s.Skip = p.File, p.Row+1
		}
	}
	return s, nil
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
