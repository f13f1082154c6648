package postgres

import (
	"testing"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/conformance"
)

func TestConformance(t *testing.T) {
	dsn, _ := newDB(t)
	conformance.Run(t, conformance.Harness{
		Type:         "postgres",
		SourceConfig: func(table string) connectors.SourceConfig { return connectors.SourceConfig{DSN: dsn, Table: table} },
		SinkConfig:   func(table string) connectors.SinkConfig { return connectors.SinkConfig{DSN: dsn, Table: table} },
		Caps: conformance.Caps{KeyRanges: true, Upsert: true, Positions: true,
			KeylessRange: connectors.Range{Pages: &connectors.PageRange{}}},
	})
}
