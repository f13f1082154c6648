package postgres

import (
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
)

func TestCursorWindow(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE ev (id int PRIMARY KEY, seq bigint NOT NULL, at timestamptz, tag text)`)
	mustExec(t, conn, `INSERT INTO ev SELECT g, g * 10, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', 'v' || g FROM generate_series(1, 100) g`)
	mustExec(t, conn, `UPDATE ev SET at = NULL WHERE id = 100`)

	src := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "ev", Key: []string{"id"}, Where: "id > 10"})
	if max, err := src.MaxCursor(testCtx(t), "seq"); err != nil || max != int64(1000) {
		t.Fatalf("MaxCursor(seq) = %v, %v", max, err)
	}
	maxAt, err := src.MaxCursor(testCtx(t), "at") // the NULL is not a maximum
	if err != nil || !maxAt.(time.Time).Equal(time.Date(2024, 1, 1, 1, 39, 0, 0, time.UTC)) {
		t.Fatalf("MaxCursor(at) = %v, %v", maxAt, err)
	}
	if _, err := src.MaxCursor(testCtx(t), "nope"); err == nil {
		t.Fatal("MaxCursor of a missing column succeeded")
	}
	srcNone := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "ev", Where: "id > 1000"})
	if max, err := srcNone.MaxCursor(testCtx(t), "seq"); err != nil || max != nil {
		t.Fatalf("MaxCursor on no rows = %v, %v", max, err)
	}

	tests := []struct {
		w    connectors.CursorWindow
		want int
	}{
		{connectors.CursorWindow{Column: "seq", UpTo: int64(1000)}, 90},
		{connectors.CursorWindow{Column: "seq", From: int64(500), UpTo: int64(1000)}, 51}, // both ends inclusive
		{connectors.CursorWindow{Column: "seq", From: int64(500), UpTo: int64(505)}, 1},
		{connectors.CursorWindow{Column: "seq", From: int64(501), UpTo: int64(509)}, 0},
		{connectors.CursorWindow{Column: "at", From: time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC), UpTo: maxAt}, 70},
		{connectors.CursorWindow{Column: "tag", From: "v5", UpTo: "v7"}, 20}, // by bytes: v50..v59, v60..v69 (v5, v6, v7 have id <= 10)
	}
	for _, tt := range tests {
		w := tt.w
		s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "ev", Key: []string{"id"}, Where: "id > 10", Cursor: &w})
		if rows := readRows(t, s, connectors.Range{}); len(rows) != tt.want {
			t.Errorf("window %+v read %d rows, want %d", w, len(rows), tt.want)
		}
		if n, err := s.Count(testCtx(t), connectors.Range{}); err != nil || n != int64(tt.want) {
			t.Errorf("window %+v counted %d (%v), want %d", w, n, err, tt.want)
		}
	}
}
