package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/conformance"
)

func TestConformance(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "conformance.db")
	conformance.Run(t, conformance.Harness{
		Type:         TypeName,
		SourceConfig: func(table string) connectors.SourceConfig { return connectors.SourceConfig{DSN: dsn, Table: table} },
		SinkConfig:   func(table string) connectors.SinkConfig { return connectors.SinkConfig{DSN: dsn, Table: table} },
		Caps:         conformance.Caps{KeyRanges: true, Upsert: true, Positions: true, KeylessRange: connectors.Range{}},
	})
}
