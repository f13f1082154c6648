package redis

import (
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/conformance"
	"github.com/datashift/datashift/connectors/internal/textform"
)

// Each table is the hashes under <prefix><table>:, and its commit records
// live under <prefix><table>:commits, where the template's pattern reaches
// them: Truncate and ReadBack must both leave them out.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	conformance.Run(t, conformance.Harness{
		Type: typeName,
		SinkConfig: func(table string) connectors.SinkConfig {
			return connectors.SinkConfig{DSN: e.dsn(), Options: map[string]string{
				"key":        e.prefix + table + ":{id}",
				"commit_key": e.prefix + table + ":commits",
			}}
		},
		ReadBack: func(t *testing.T, table string) []arrow.RecordBatch {
			return e.readBack(t, e.prefix+table+":{id}", e.prefix+table+":commits:", conformance.Schema)
		},
		Caps: conformance.Caps{Upsert: true}, // HSET replaces: append and upsert are one
	})
}

// readBack reads the hashes that key template tmpl produced, except those
// under skip, as one batch of schema: a missing field is a NULL.
func (e env) readBack(t *testing.T, tmpl, skip string, schema *arrow.Schema) []arrow.RecordBatch {
	t.Helper()
	tp, err := parseTemplate(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	iter := e.rdb.ScanType(ctx, 0, tp.pattern(), 1000, "hash").Iterator()
	for iter.Next(ctx) {
		if k := iter.Val(); len(k) < len(skip) || k[:len(skip)] != skip {
			keys = append(keys, k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys) // SCAN may return a key twice
	pipe := e.rdb.Pipeline()
	for _, k := range keys {
		pipe.HGetAll(ctx, k)
	}
	var hashes []map[string]string
	if len(keys) > 0 {
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			hashes = append(hashes, c.(interface{ Val() map[string]string }).Val())
		}
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	parsers := make([]textform.Parser, schema.NumFields())
	for i, f := range schema.Fields() {
		if parsers[i], err = textform.NewParser(f, textform.Base64); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range hashes {
		for c, f := range schema.Fields() {
			v, ok := h[f.Name]
			if !ok {
				b.Field(c).AppendNull()
				continue
			}
			if err := parsers[c](b.Field(c), v); err != nil {
				t.Fatalf("%s field %s: %v", keys[i], f.Name, err)
			}
		}
		if len(h) > schema.NumFields() {
			t.Fatalf("%s has %d fields, the schema %d", keys[i], len(h), schema.NumFields())
		}
	}
	return []arrow.RecordBatch{b.NewRecordBatch()}
}
