package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/datashift/datashift/engine"
)

// Verify compares range by range, and a sink row no source range holds —
// here a NULL key, which the source's NOT NULL key never plans a range
// for — still shows, in a partition of its own. A keyless job is compared
// whole and says so.
func TestVerifyCoversRowsOutsideTheSourceRanges(t *testing.T) {
	src, dst := sqliteEndpoint(t), sqliteEndpoint(t)
	src.fill(t, 25000)
	dst.fill(t, 25000)
	job := copyJob(src, dst, "truncate")
	ctx := context.Background()
	v, err := engine.Verify(ctx, job)
	if err != nil {
		t.Fatalf("verify of equal tables: %v", err)
	}
	if n := len(v.Partitions); n < 4 || !v.Partitions[n-1].Range.Nulls {
		t.Fatalf("want several key ranges and a NULL-key range last: %+v", v.Partitions)
	}
	if s, k := v.Totals(); s != 25000 || k != 25000 {
		t.Fatalf("totals %d and %d, want 25000", s, k)
	}

	// A sink table that lets its key be NULL, holding one row more.
	dst.exec(t, `CREATE TABLE loose (id INTEGER, name TEXT, amount DECIMAL_TEXT(12,2), created TIMESTAMPTZ_TEXT NOT NULL, flag BOOLEAN, updated_at INTEGER NOT NULL DEFAULT 0)`,
		`INSERT INTO loose SELECT * FROM orders`,
		`INSERT INTO loose (id, name, created, updated_at) VALUES (NULL, 'stray', '2024-01-01T00:00:00.000000Z', 0)`)
	job.Sink.Table = "loose"
	v, err = engine.Verify(ctx, job)
	if !errors.Is(err, engine.ErrDiffers) || err.Error() != `job "copy-sqlite-sqlite": the sink differs from the source in 1 of `+fmt.Sprint(len(v.Partitions))+" partitions" {
		t.Fatalf("verify with a NULL-key row in the sink: %v", err)
	}
	d := v.Differing()
	if len(d) != 1 || !d[0].Range.Nulls || d[0].Source.Rows != 0 || d[0].Sink.Rows != 1 {
		t.Fatalf("want the NULL-key partition to differ by one sink row: %+v", d)
	}

	job.Source.Key = nil
	v, err = engine.Verify(ctx, job)
	if !errors.Is(err, engine.ErrDiffers) || len(v.Partitions) != 1 || !strings.HasPrefix(v.Reason, "no key: the table is compared as one partition") {
		t.Fatalf("keyless verify: %v, %s, %+v", err, v.Reason, v.Partitions)
	}
	if p := v.Partitions[0]; p.Source.Rows != 25000 || p.Sink.Rows != 25001 {
		t.Fatalf("keyless verify read %v and %v", p.Source, p.Sink)
	}
}
