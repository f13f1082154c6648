package sqlite

import (
	"context"
	"slices"
	"testing"

	"github.com/datashift/datashift/connectors"
)

// PrimaryKey names the key's columns in key order, not table order; none
// for a table without one, a view or a query.
func TestPrimaryKey(t *testing.T) {
	path := newDB(t)
	db := sqlDB(t, path)
	mustExec(t, db, `CREATE TABLE composite (a TEXT, b INT, c INT, PRIMARY KEY (c, a))`)
	mustExec(t, db, `CREATE TABLE rowid_key (id INTEGER PRIMARY KEY, v TEXT)`)
	mustExec(t, db, `CREATE TABLE heap (id INT, v TEXT)`)
	mustExec(t, db, `CREATE VIEW v AS SELECT * FROM composite`)
	for _, tc := range []struct {
		cfg  connectors.SourceConfig
		want []string
	}{
		{connectors.SourceConfig{DSN: path, Table: "composite"}, []string{"c", "a"}},
		{connectors.SourceConfig{DSN: path, Table: "rowid_key"}, []string{"id"}},
		{connectors.SourceConfig{DSN: path, Table: "heap"}, nil},
		{connectors.SourceConfig{DSN: path, Table: "v"}, nil},
		{connectors.SourceConfig{DSN: path, Query: "SELECT * FROM composite"}, nil},
	} {
		got, err := openSrc(t, tc.cfg).(connectors.PrimaryKeyer).PrimaryKey(context.Background())
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s%s: primary key %v (%v), want %v", tc.cfg.Table, tc.cfg.Query, got, err, tc.want)
		}
	}
}
