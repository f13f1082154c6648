package parts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

var ctx = context.Background()

var schema = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)

func rows(ids ...int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues(ids, nil)
	return b.NewRecordBatch()
}

// lines writes one line per row: the row's id.
type lines struct{ w io.Writer }

func (e lines) Write(rec arrow.RecordBatch) error {
	for _, v := range rec.Column(0).(*array.Int64).Int64Values() {
		if _, err := fmt.Fprintln(e.w, v); err != nil {
			return err
		}
	}
	return nil
}

func (lines) Close() error { return nil }

func newLines(w io.Writer) (Encoder, error) { return lines{w}, nil }

func spec(run, partition string, lease int64) connectors.WriterSpec {
	return connectors.WriterSpec{Job: "job", Run: run, Partition: partition, Lease: lease, Schema: schema}
}

func claim(t *testing.T, l Layout, s connectors.WriterSpec) connectors.CommitRecord {
	t.Helper()
	rec, err := l.Claim(s)
	if err != nil {
		t.Fatalf("claim %s/%s under lease %d: %v", s.Run, s.Partition, s.Lease, err)
	}
	return rec
}

func open(t *testing.T, l Layout, s connectors.WriterSpec) *Writer {
	t.Helper()
	w, err := l.OpenWriter(s, newLines)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func write(t *testing.T, w *Writer, ids ...int64) {
	t.Helper()
	rec := rows(ids...)
	defer rec.Release()
	if err := w.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// next is rec after one more commit of n rows.
func next(rec connectors.CommitRecord, n int64) connectors.CommitRecord {
	rec.Rows += n
	rec.Commits++
	rec.Position = connectors.Key{int64(0), rec.Rows - 1}
	return rec
}

func commit(t *testing.T, w *Writer, rec connectors.CommitRecord) {
	t.Helper()
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func sameRecord(t *testing.T, when string, got, want connectors.CommitRecord) {
	t.Helper()
	if got.Job != want.Job || got.Run != want.Run || got.Partition != want.Partition || got.Lease != want.Lease ||
		connectors.CompareKeys(got.Position, want.Position) != 0 || got.Rows != want.Rows ||
		got.Commits != want.Commits || got.Done != want.Done || got.BadRows != want.BadRows {
		t.Fatalf("%s: record %+v, want %+v", when, got, want)
	}
}

// TestLayout pins the names a dataset holds after commits with and
// without rows, and that a landed commit removes the records it supersedes.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir, Ext: ".csv"}
	if err := l.Prepare(false); err != nil {
		t.Fatal(err)
	}
	s := spec("20240101T000000.000000Z-abc123", "p 1", 7)
	rec := claim(t, l, s)
	if rec.Commits != 0 || rec.Lease != 7 || rec.Partition != "p 1" {
		t.Fatalf("first claim %+v", rec)
	}
	w := open(t, l, s)
	write(t, w, 1, 2, 3)
	if got, want := list(t, dir), []string{"20240101T000000.000000Z-abc123-p_1-000001.csv.7.tmp", "_datashift"}; !slices.Equal(got, want) {
		t.Fatalf("while writing: %v, want %v", got, want)
	}
	rec = next(rec, 3)
	commit(t, w, rec)
	write(t, w, 4)
	rec = next(rec, 1)
	commit(t, w, rec)
	rec.Commits++
	rec.Done = true
	commit(t, w, rec) // no rows: a record only
	if got, want := list(t, dir), []string{"20240101T000000.000000Z-abc123-p_1-000001.csv", "20240101T000000.000000Z-abc123-p_1-000002.csv", "_datashift"}; !slices.Equal(got, want) {
		t.Fatalf("parts %v, want %v", got, want)
	}
	if got, want := list(t, l.logDir()), []string{"job+20240101T000000.000000Z-abc123+p_1+000003+7.json", "job+20240101T000000.000000Z-abc123+p_1.lease"}; !slices.Equal(got, want) {
		t.Fatalf("log %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "20240101T000000.000000Z-abc123-p_1-000002.csv")); string(b) != "4\n" {
		t.Fatalf("part 2 holds %q", b)
	}
	sameRecord(t, "claim after the last commit", claim(t, l, s), rec)
}

// TestResumeKeepsCommitted: a crash anywhere in a commit leaves the
// committed parts alone; the next claim removes only what did not finish
// and returns the last commit that did.
func TestResumeKeepsCommitted(t *testing.T) {
	for _, crash := range []string{"while writing", "after the record", "after an empty commit's record tmp"} {
		t.Run(crash, func(t *testing.T) {
			dir := t.TempDir()
			l := Layout{Dir: dir, Ext: ".csv"}
			other := spec("r1", "p2", 1)
			orec := claim(t, l, other)
			ow := open(t, l, other)
			write(t, ow, 100)
			commit(t, ow, next(orec, 1))

			s := spec("r1", "p1", 1)
			rec := claim(t, l, s)
			w := open(t, l, s)
			write(t, w, 1, 2)
			rec = next(rec, 2)
			commit(t, w, rec)
			committed := list(t, dir)

			n := namesOf(s.Job, s.Run, s.Partition)
			switch crash {
			case "while writing":
				write(t, w, 3) // and no commit: the .tmp part stays
			case "after the record":
				write(t, w, 3)
				body := fmt.Sprintf(`{"job":"job","run":"r1","partition":"p1","lease":1,"rows":3,"commits":2,"part":%q}`, n.partName(".csv", 2))
				if err := os.WriteFile(filepath.Join(l.logDir(), n.recordName(2, 1)), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			case "after an empty commit's record tmp":
				if err := os.WriteFile(filepath.Join(l.logDir(), n.recordName(2, 1)+".tmp"), []byte(`{"job":`), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// no Close: the process died
			got := claim(t, l, spec("r1", "p1", 2))
			want := rec
			want.Lease = 2
			sameRecord(t, "claim after the crash", got, want)
			if got := list(t, dir); !slices.Equal(got, committed) {
				t.Fatalf("after the claim %v, want the committed %v", got, committed)
			}
			if got, want := list(t, l.logDir()), []string{"job+r1+p1+000001+1.json", "job+r1+p1.lease", "job+r1+p2+000001+1.json", "job+r1+p2.lease"}; !slices.Equal(got, want) {
				t.Fatalf("log after the claim %v, want %v", got, want)
			}
		})
	}
}

// TestStaleCommitFails: once a newer lease has claimed the partition, the
// old writer's commit fails with ErrLeaseLost and lands nothing, and the
// old lease cannot claim it back.
func TestStaleCommitFails(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir, Ext: ".csv"}
	old := spec("r1", "p0", 1)
	rec := claim(t, l, old)
	w := open(t, l, old)
	write(t, w, 1)
	claim(t, l, spec("r1", "p0", 2))
	err := w.Commit(ctx, next(rec, 1))
	if !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("stale commit: %v, want ErrLeaseLost", err)
	}
	if err := w.Commit(ctx, next(rec, 1)); err == nil {
		t.Fatal("a writer whose commit failed took another commit")
	}
	if _, err := l.Claim(old); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("claim under the older lease: %v, want ErrLeaseLost", err)
	}
	if got := list(t, dir); !slices.Equal(got, []string{"_datashift"}) {
		t.Fatalf("after a stale commit: %v", got)
	}
	if got := list(t, l.logDir()); !slices.Equal(got, []string{"job+r1+p0.lease"}) {
		t.Fatalf("log after a stale commit: %v", got)
	}
	// Without a claim there is no lease to commit under.
	unclaimed := open(t, l, spec("r1", "p9", 1))
	if err := unclaimed.Commit(ctx, connectors.CommitRecord{Lease: 1, Commits: 1}); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("commit of an unclaimed partition: %v, want ErrLeaseLost", err)
	}
}

// TestClaimInsideTheWindow puts a newer claim between a stale commit's lease
// check and its renames, the window the package doc describes.
func TestClaimInsideTheWindow(t *testing.T) {
	t.Cleanup(func() { afterLeaseCheck = nil })

	t.Run("rows", func(t *testing.T) {
		dir := t.TempDir()
		l := Layout{Dir: dir, Ext: ".csv"}
		old := spec("r1", "p0", 1)
		rec := claim(t, l, old)
		w := open(t, l, old)
		write(t, w, 1)
		commit(t, w, next(rec, 1))
		rec = next(rec, 1)
		write(t, w, 2)
		var fresh connectors.CommitRecord
		afterLeaseCheck = func() { afterLeaseCheck = nil; fresh = claim(t, l, spec("r1", "p0", 2)) }
		err := w.Commit(ctx, next(rec, 1))
		if !errors.Is(err, connectors.ErrLeaseLost) {
			t.Fatalf("stale commit inside the window: %v, want ErrLeaseLost", err)
		}
		want := rec
		want.Lease = 2
		sameRecord(t, "the claim inside the window", fresh, want)
		sameRecord(t, "a claim after it", claim(t, l, spec("r1", "p0", 2)), want)
		if got := list(t, dir); !slices.Equal(got, []string{"_datashift", "r1-p0-000001.csv"}) {
			t.Fatalf("the stale part landed: %v", got)
		}
	})

	t.Run("no rows", func(t *testing.T) {
		// A stale commit with no rows lands its record; the new holder's
		// record for the same commit number wins.
		dir := t.TempDir()
		l := Layout{Dir: dir, Ext: ".csv"}
		old := spec("r1", "p0", 1)
		rec := claim(t, l, old)
		w := open(t, l, old)
		write(t, w, 1)
		rec = next(rec, 1)
		commit(t, w, rec)
		var fresh *Writer
		var freshRec connectors.CommitRecord
		afterLeaseCheck = func() {
			afterLeaseCheck = nil
			freshRec = claim(t, l, spec("r1", "p0", 2))
			fresh = open(t, l, spec("r1", "p0", 2))
		}
		stale := rec
		stale.Commits++
		stale.Done = true
		if err := w.Commit(ctx, stale); err != nil {
			t.Fatalf("stale empty commit: %v", err) // the window: it cannot tell
		}
		write(t, fresh, 2)
		freshRec = next(freshRec, 1)
		commit(t, fresh, freshRec)
		sameRecord(t, "claim after both", claim(t, l, spec("r1", "p0", 2)), freshRec)
	})
}

// TestNamesStayApart: a name piece is never a path, partitions whose names
// end in digits are not confused, and names that collide in file names are
// refused rather than mixed.
func TestNamesStayApart(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir, Ext: ".csv"}
	for _, p := range []string{"../../etc/x", "a/b", "", "range [1, 5)", "a+b"} {
		n := namesOf(p, p, p)
		for _, name := range []string{n.partName(l.Ext, 1), n.leaseName(), n.recordName(1, 1)} {
			if filepath.Base(name) != name || name == ".." {
				t.Errorf("piece %q gives %s, a path", p, name)
			}
		}
		if strings.Count(n.recordName(1, 1), "+") != 4 {
			t.Errorf("piece %q: record name %s does not split back", p, n.recordName(1, 1))
		}
	}
	if got := l.PartName("r1", "range [1, 5)", 12); got != "r1-range__1__5_-000012.csv" {
		t.Errorf("name %s", got)
	}

	for _, p := range []string{"p1", "p1-000001"} {
		s := spec("r1", p, 1)
		rec := claim(t, l, s)
		w := open(t, l, s)
		write(t, w, 1)
		commit(t, w, next(rec, 1))
	}
	w := open(t, l, spec("r1", "p1-000001", 1))
	write(t, w, 2) // an unfinished part of p1-000001
	claim(t, l, spec("r1", "p1", 2))
	if got, want := list(t, dir), []string{"_datashift", "r1-p1-000001-000001.csv", "r1-p1-000001-000002.csv.1.tmp", "r1-p1-000001.csv"}; !slices.Equal(got, want) {
		t.Fatalf("claiming p1 touched p1-000001: %v, want %v", got, want)
	}

	claim(t, l, spec("r1", "a/b", 1))
	if _, err := l.Claim(spec("r1", "a_b", 1)); err == nil || !strings.Contains(err.Error(), "collides") {
		t.Fatalf("colliding partition names: %v", err)
	}
}

// TestForget: Forget removes one run's log files and nothing else.
func TestForget(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir, Ext: ".csv"}
	for _, s := range []connectors.WriterSpec{spec("r1", "p0", 1), spec("r1", "p1", 1), spec("r10", "p0", 1),
		{Job: "job2", Run: "r1", Partition: "p0", Lease: 1}, {Job: "job", Run: "r/1", Partition: "p0", Lease: 1}} {
		rec := claim(t, l, s)
		w := open(t, l, s)
		write(t, w, 1)
		commit(t, w, next(rec, 1))
	}
	parts := list(t, dir)
	if err := l.Forget("job", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Forget("job", "r_1"); err != nil { // named like r/1's files, but not r/1
		t.Fatal(err)
	}
	if got := list(t, dir); !slices.Equal(got, parts) {
		t.Fatalf("Forget changed the parts: %v, want %v", got, parts)
	}
	// (job2's r1/p0 numbered its part past job's: part names carry no job,
	// run ids are unique.)
	want := []string{"job+r10+p0+000001+1.json", "job+r10+p0.lease", "job+r_1+p0+000001+1.json", "job+r_1+p0.lease", "job2+r1+p0+000002+1.json", "job2+r1+p0.lease"}
	if got := list(t, l.logDir()); !slices.Equal(got, want) {
		t.Fatalf("log after Forget %v, want %v", got, want)
	}
	// A forgotten partition starts over, numbering past the parts it has.
	s := spec("r1", "p0", 5)
	rec := claim(t, l, s)
	if rec.Commits != 0 {
		t.Fatalf("claim after Forget: %+v", rec)
	}
	w := open(t, l, s)
	write(t, w, 2)
	commit(t, w, next(rec, 1))
	if b, _ := os.ReadFile(filepath.Join(dir, "r1-p0-000001.csv")); string(b) != "1\n" {
		t.Fatalf("the first part was overwritten: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "r1-p0-000002.csv")); err != nil {
		t.Fatal(err)
	}
}

func TestPrepareTruncate(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir, Ext: ".csv"}
	s := spec("r1", "p0", 1)
	rec := claim(t, l, s)
	w := open(t, l, s)
	write(t, w, 1)
	commit(t, w, next(rec, 1))
	write(t, w, 2) // unfinished
	keep := []string{"lookup.csv", "notes.txt", "p0-01.csv"}
	for _, n := range append(slices.Clone(keep), "p0-000001.csv", "old-000007.csv.tmp") {
		os.WriteFile(filepath.Join(dir, n), []byte("x\n"), 0o644)
	}
	os.WriteFile(filepath.Join(l.logDir(), "README"), []byte("x\n"), 0o644)
	if err := l.Prepare(true); err != nil {
		t.Fatal(err)
	}
	if got, want := list(t, dir), append([]string{"_datashift"}, keep...); !slices.Equal(got, want) {
		t.Fatalf("after truncate %v, want %v", got, want)
	}
	if got := list(t, l.logDir()); !slices.Equal(got, []string{"README"}) {
		t.Fatalf("log after truncate %v, want only the file that is not the log's", got)
	}
}

// TestMissingCommittedPart: a part removed by hand is not papered over by
// starting the partition again.
func TestMissingCommittedPart(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir, Ext: ".csv"}
	s := spec("r1", "p0", 1)
	rec := claim(t, l, s)
	w := open(t, l, s)
	for i := range int64(2) {
		write(t, w, i)
		rec = next(rec, 1)
		commit(t, w, rec)
	}
	os.Remove(filepath.Join(dir, "r1-p0-000002.csv"))
	if _, err := l.Claim(spec("r1", "p0", 2)); err == nil || !strings.Contains(err.Error(), "r1-p0-000002.csv, which is missing") {
		t.Fatalf("claim with a committed part gone: %v", err)
	}
}

func TestFileSpan(t *testing.T) {
	pr := func(lo, hi int64) connectors.Range {
		return connectors.Range{Pages: &connectors.PageRange{Lo: lo, Hi: hi}}
	}
	after := func(r connectors.Range, f, row int64) connectors.Range { return r.Resumed(connectors.Key{f, row}) }
	for _, c := range []struct {
		r    connectors.Range
		want Span
	}{
		{connectors.Range{}, Span{0, 5, 0}},
		{pr(1, 3), Span{1, 3, 0}},
		{pr(3, 0), Span{3, 5, 0}},
		{pr(4, 99), Span{4, 5, 0}},
		{pr(7, 9), Span{5, 5, 0}},
		{pr(3, 2), Span{2, 2, 0}},
		{connectors.Range{Nulls: true}, Span{}},
		{after(connectors.Range{}, 0, 9), Span{0, 5, 10}},
		{after(connectors.Range{}, 2, 0), Span{2, 5, 1}},
		{after(pr(1, 3), 0, 7), Span{1, 3, 0}},
		{after(pr(1, 3), 2, 7), Span{2, 3, 8}},
		{after(pr(1, 3), 3, 0), Span{3, 3, 0}},
	} {
		got, err := FileSpan(5, c.r)
		if err != nil || got != c.want {
			t.Errorf("FileSpan(5, %s after %s) = %+v, %v; want %+v", c.r, c.r.After, got, err, c.want)
		}
	}
	if _, err := FileSpan(5, connectors.Range{Lo: connectors.Key{int64(1)}}); err == nil || !strings.Contains(err.Error(), "no key order") {
		t.Errorf("key range: %v", err)
	}
	for _, bad := range []connectors.Key{{int64(1)}, {"a", int64(1)}, {int64(-1), int64(0)}} {
		if _, err := FileSpan(5, connectors.Range{After: bad}); err == nil || !strings.Contains(err.Error(), "not a file position") {
			t.Errorf("after %s: %v", bad, err)
		}
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir, Ext: ".csv"}
	if files, err := List(dir, ".csv"); err != nil || len(files) != 0 {
		t.Fatalf("empty directory: %v, %v", files, err)
	}
	s := spec("r1", "p0", 1)
	rec := claim(t, l, s)
	w := open(t, l, s)
	write(t, w, 1)
	commit(t, w, next(rec, 1))
	write(t, w, 2) // a .tmp part
	os.WriteFile(filepath.Join(dir, "a.csv"), []byte("12345"), 0o644)
	os.WriteFile(filepath.Join(l.logDir(), "x.csv"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub.csv"), 0o755)
	mtime := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(dir, "a.csv"), mtime, mtime)
	files, err := List(dir, ".csv")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f.Path))
	}
	if !slices.Equal(names, []string{"a.csv", "r1-p0-000001.csv"}) {
		t.Fatalf("inputs %v", names)
	}
	if files[0].Path != filepath.Join(dir, "a.csv") || files[0].Size != 5 || !files[0].ModTime.Equal(mtime) || files[1].Size != 2 {
		t.Fatalf("file infos %+v", files)
	}
	one, err := List(filepath.Join(dir, "a.csv"), ".csv")
	if err != nil || len(one) != 1 || one[0] != files[0] {
		t.Fatalf("a single file: %+v, %v", one, err)
	}
}

// Check (datashift check) creates nothing and refuses, as Prepare does, a
// dataset directory under a file.
func TestLayoutCheck(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: filepath.Join(dir, "a", "b"), Ext: ".csv"}
	if err := l.Check(); err != nil {
		t.Fatalf("check of a directory to be made: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Fatalf("check made the directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "create dataset directory: " + filepath.Join(dir, "a") + " is not a directory"
	if err := l.Check(); err == nil || err.Error() != want {
		t.Fatalf("check under a file: %v, want %s", err, want)
	}
	if err := l.Prepare(false); err == nil || err.Error() != want {
		t.Fatalf("prepare under a file: %v, want %s", err, want)
	}
}
