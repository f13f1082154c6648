package mysql

import (
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
)

func TestCursorWindow(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, `CREATE TABLE ev (id INT PRIMARY KEY, seq BIGINT NOT NULL, at DATETIME(6) NOT NULL)`)
	exec(t, db, `INSERT INTO ev SELECT seq, seq * 10, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_100`)

	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "ev", Key: []string{"id"}})
	max, err := src.MaxCursor(testCtx(t), "seq")
	if err != nil || max != int64(1000) {
		t.Fatalf("MaxCursor(seq) = %v, %v", max, err)
	}
	maxAt, err := src.MaxCursor(testCtx(t), "at")
	if err != nil || !maxAt.(time.Time).Equal(time.Date(2024, 1, 1, 1, 40, 0, 0, time.UTC)) {
		t.Fatalf("MaxCursor(at) = %v, %v", maxAt, err)
	}
	if _, err := src.MaxCursor(testCtx(t), "nope"); err == nil {
		t.Fatal("MaxCursor of a missing column succeeded")
	}

	tests := []struct {
		w    connectors.CursorWindow
		want int
	}{
		{connectors.CursorWindow{Column: "seq", UpTo: int64(1000)}, 100},
		{connectors.CursorWindow{Column: "seq", From: int64(500), UpTo: int64(1000)}, 51}, // both ends inclusive
		{connectors.CursorWindow{Column: "seq", From: int64(500), UpTo: int64(505)}, 1},
		{connectors.CursorWindow{Column: "seq", From: int64(501), UpTo: int64(509)}, 0},
		{connectors.CursorWindow{Column: "at", From: time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC), UpTo: maxAt}, 71},
	}
	for _, tt := range tests {
		w := tt.w
		s := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "ev", Key: []string{"id"}, Cursor: &w})
		if rows, _ := readAll(t, s, connectors.Range{}); len(rows) != tt.want {
			t.Errorf("window %+v read %d rows, want %d", w, len(rows), tt.want)
		}
		if n, err := s.Count(testCtx(t), connectors.Range{Lo: connectors.Key{int64(1)}}); err != nil || n != int64(tt.want) {
			t.Errorf("window %+v counted %d (%v), want %d", w, n, err, tt.want)
		}
	}
}
