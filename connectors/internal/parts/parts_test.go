package parts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
)

func TestFileRange(t *testing.T) {
	pr := func(lo, hi int64) connectors.Range {
		return connectors.Range{Pages: &connectors.PageRange{Lo: lo, Hi: hi}}
	}
	for _, c := range []struct {
		r      connectors.Range
		lo, hi int
	}{
		{connectors.Range{}, 0, 5},
		{pr(1, 3), 1, 3},
		{pr(3, 0), 3, 5},
		{pr(4, 99), 4, 5},
		{pr(7, 9), 5, 5},
		{pr(3, 2), 2, 2},
		{connectors.Range{Nulls: true}, 0, 0},
	} {
		lo, hi, err := FileRange(5, c.r)
		if err != nil || lo != c.lo || hi != c.hi {
			t.Errorf("FileRange(5, %s) = %d, %d, %v; want %d, %d", c.r, lo, hi, err, c.lo, c.hi)
		}
	}
	if _, _, err := FileRange(5, connectors.Range{After: connectors.Key{int64(1)}}); err == nil || !strings.Contains(err.Error(), "no key order") {
		t.Errorf("key range: %v", err)
	}
}

// TestNamesStayInTheDirectory: a partition name is never a path.
func TestNamesStayInTheDirectory(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir, Ext: ".csv"}
	for _, p := range []string{"../../etc/x", "a/b", "", "range [1, 5)"} {
		name := l.Name(p, 1)
		if filepath.Dir(name) != dir {
			t.Errorf("partition %q gives %s, outside %s", p, name, dir)
		}
	}
	if got := filepath.Base(l.Name("range [1, 5)", 12)); got != "range__1__5_-000012.csv" {
		t.Errorf("name %s", got)
	}
	// A partition whose name ends in digits is not confused with another.
	for _, p := range []string{"p1", "p1-000001"} {
		part, err := l.Create(p, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := part.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Restore("p1", &connectors.ResumePoint{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p1-000001-000001.csv")); err != nil {
		t.Errorf("restarting p1 removed p1-000001's part: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p1-000001.csv")); err == nil {
		t.Errorf("restarting p1 kept its part")
	}
}
