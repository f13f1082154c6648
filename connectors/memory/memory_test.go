package memory_test

import (
	"testing"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/conformance"
	"github.com/datashift/datashift/connectors/memory"
)

func TestConformance(t *testing.T) {
	db := memory.New(t.Name())
	t.Cleanup(db.Drop)
	conformance.Run(t, conformance.Harness{
		Type: memory.TypeName,
		SourceConfig: func(table string) connectors.SourceConfig {
			return connectors.SourceConfig{DSN: db.DSN(), Table: table}
		},
		SinkConfig: func(table string) connectors.SinkConfig { return connectors.SinkConfig{DSN: db.DSN(), Table: table} },
		Caps:       conformance.Caps{KeyRanges: true, Upsert: true, Positions: true, KeylessRange: connectors.Range{}},
	})
}
