package mysql

import (
	"testing"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/conformance"
)

func TestConformance(t *testing.T) {
	for _, bulk := range []string{bulkLoad, bulkInsert} {
		t.Run(bulk, func(t *testing.T) {
			dsn, _ := testDB(t)
			conformance.Run(t, conformance.Harness{
				Type: TypeName,
				SourceConfig: func(table string) connectors.SourceConfig {
					return connectors.SourceConfig{DSN: dsn, Table: table}
				},
				SinkConfig: func(table string) connectors.SinkConfig {
					return connectors.SinkConfig{DSN: dsn, Table: table, Options: map[string]string{"bulk": bulk}}
				},
				// No PositionReader: NULL-key partitions and keyless tables
				// commit once, at their end.
				Caps: conformance.Caps{KeyRanges: true, Upsert: true},
			})
		})
	}
}
