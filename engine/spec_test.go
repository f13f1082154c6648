package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datashift/datashift/engine"

	_ "github.com/datashift/datashift/connectors/csv"
	_ "github.com/datashift/datashift/connectors/parquet"
	_ "github.com/datashift/datashift/connectors/sqlite"
)

const goodSpec = `
name: orders-sync
source:
  type: sqlite
  dsn: /tmp/source.sqlite
  table: orders
  key: [id]
sink:
  type: parquet
  dsn: /tmp/out
  mode: append
schedule:
  cron: "*/5 * * * *"
  timezone: Europe/Berlin
retries:
  max: 3
  backoff: 1s
batch_bytes: 4MiB
`

func TestParseJobGood(t *testing.T) {
	j, err := engine.ParseJob([]byte(goodSpec))
	if err != nil {
		t.Fatalf("ParseJob: %v", err)
	}
	if j.Name != "orders-sync" || j.Source.Key[0] != "id" || j.Retries.Max != 3 || j.BatchBytes != 4<<20 {
		t.Fatalf("decoded %+v", j)
	}
	if j.BatchRows != engine.DefaultBatchRows || j.Schedule.Overlap != engine.OverlapSkip {
		t.Fatalf("defaults not filled: batch_rows %d overlap %q", j.BatchRows, j.Schedule.Overlap)
	}
}

func TestParseJobJSON(t *testing.T) {
	j, err := engine.ParseJob([]byte(`{"name":"j","source":{"type":"sqlite","dsn":"a.db","table":"t"},"sink":{"type":"parquet","dsn":"out"}}`))
	if err != nil {
		t.Fatalf("ParseJob JSON: %v", err)
	}
	if j.Sink.Mode != "append" {
		t.Fatalf("mode %q", j.Sink.Mode)
	}
}

// Each bad spec is refused with an error naming the field.
func TestParseJobRefusesBadSpecs(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		field   string
		message string
	}{
		{"unknown source connector", func(s string) string { return strings.Replace(s, "type: sqlite", "type: oracle", 1) }, "source.type", `unknown connector "oracle"`},
		{"unknown sink connector", func(s string) string { return strings.Replace(s, "type: parquet", "type: kafka", 1) }, "sink.type", `unknown connector "kafka"`},
		{"upsert from a query without key", func(s string) string {
			s = strings.Replace(s, "  table: orders\n", "  query: SELECT * FROM orders\n", 1)
			return strings.Replace(strings.Replace(s, "  key: [id]\n", "", 1), "mode: append", "mode: upsert", 1)
		}, "source.key", "required for sink.mode upsert (the columns rows are matched by) unless source.table has a primary key"},
		{"bad mode", func(s string) string { return strings.Replace(s, "mode: append", "mode: merge", 1) }, "sink.mode", `got "merge"`},
		{"bad cron", func(s string) string { return strings.Replace(s, `"*/5 * * * *"`, `"*/5 * * *"`, 1) }, "schedule.cron", "expected"},
		{"bad timezone", func(s string) string { return strings.Replace(s, "Europe/Berlin", "Mars/Olympus", 1) }, "schedule.timezone", "Mars/Olympus"},
		{"bad name", func(s string) string { return strings.Replace(s, "name: orders-sync", "name: 'orders sync!'", 1) }, "name", "letters, digits"},
		{"after itself", func(s string) string {
			return strings.Replace(s, "  timezone: Europe/Berlin", "  after: [orders-sync]", 1)
		}, "schedule.after", "after itself"},
		{"bad overlap", func(s string) string {
			return strings.Replace(s, "  timezone: Europe/Berlin", "  overlap: sometimes", 1)
		}, "schedule.overlap", "sometimes"},
		{"table and query", func(s string) string {
			return strings.Replace(s, "table: orders", "table: orders\n  query: select 1", 1)
		}, "source.query", "not both"},
		{"missing dsn", func(s string) string { return strings.Replace(s, "dsn: /tmp/source.sqlite", "dsn: ''", 1) }, "source.dsn", "required"},
		{"key not in columns", func(s string) string { return strings.Replace(s, "key: [id]", "key: [id]\n  columns: [name]", 1) }, "source.key", `"id" must be among source.columns`},
		{"negative retries", func(s string) string { return strings.Replace(s, "max: 3", "max: -1", 1) }, "retries.max", "negative"},
		{"bad callback", func(s string) string { return s + "callbacks:\n  - url: ftp://example\n" }, "callbacks[0].url", "http://"},
		{"callback password with '/'", func(s string) string { return s + "callbacks:\n  - url: http://u:pa/ss@h/hook\n" }, "callbacks[0].url", "the password holds '/', which a URL must write as %2F"},
		{"sink password with '@'", func(s string) string { return strings.Replace(s, "dsn: /tmp/out", "dsn: 'postgres://u:pa@ss@h/db'", 1) }, "sink.dsn", "the password holds '@', which a URL must write as %40"},
		{"bad ratio", func(s string) string { return s + "bad_rows:\n  ratio: 2\n" }, "bad_rows.ratio", "between 0 and 1"},
		{"parallelism 0", func(s string) string { return s + "parallelism: 0\n" }, "parallelism", "must be at least 1 (leave it out for the default, 4)"},
		{"negative parallelism", func(s string) string { return s + "parallelism: -1\n" }, "parallelism", "must be at least 1 (got -1)"},
		{"absurd parallelism", func(s string) string { return s + "parallelism: 200000\n" }, "parallelism", "200000 is more than 256 partitions at once: more adds memory, not speed"},
		{"partitions.max 0", func(s string) string { return s + "partitions: {max: 0}\n" }, "partitions.max", "must be at least 1 (leave it out for the default, 64)"},
		{"absurd partitions.max", func(s string) string { return s + "partitions: {max: 1000000000, target_rows: 1}\n" }, "partitions.max",
			"1000000000 is more than 10000: each partition costs a plan entry, a lease and a commit record; raise partitions.target_rows instead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := engine.ParseJob([]byte(tt.edit(goodSpec)))
			if err == nil {
				t.Fatal("bad spec accepted")
			}
			var se *engine.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a SpecError", err)
			}
			if !strings.Contains(err.Error(), tt.field+":") || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %q does not name field %q with %q", err, tt.field, tt.message)
			}
			if !strings.Contains(err.Error(), `job "orders-sync"`) && tt.field != "name" {
				t.Fatalf("error %q does not name the job", err)
			}
		})
	}
}

// What the decoder refuses is said in the spec's words: the field's path,
// the known field a typo meant, the kind of value a field wants; never Go
// type names. It is a spec error like any other (exit code 2).
func TestParseJobRefusesUnknownFields(t *testing.T) {
	tests := []struct{ name, spec, want string }{
		{"typo", goodSpec + "paralelism: 4\n", `job "orders-sync": paralelism: unknown field (did you mean parallelism?)`},
		{"nested typo", strings.Replace(goodSpec, "  mode: append", "  create_tabel: true", 1),
			`job "orders-sync": sink.create_tabel: unknown field (did you mean create_table?)`},
		{"no near field", goodSpec + "colour: blue\n", `job "orders-sync": colour: unknown field (known: name, source, sink, partitions, batch_rows,`},
		{"in a list", goodSpec + "callbacks: [{url: http://h/x, when: success}]\n", `job "orders-sync": callbacks[0].when: unknown field (known: url, on)`},
		{"bad duration", strings.Replace(goodSpec, "backoff: 1s", "backoff: soon", 1), `job "orders-sync": retries.backoff: "soon" is not a duration like 500ms or 5m`},
		{"not a number", goodSpec + "parallelism: many\n", `job "orders-sync": parallelism: want a whole number, got "many"`},
		{"not a list", strings.Replace(goodSpec, "key: [id]", "key: {id: 1}", 1), `job "orders-sync": source.key: want a list, got a mapping`},
		{"not a mapping", "[a, list]", `job spec: want a mapping of fields (name, source, sink,`},
		{"empty", "", "job spec: the spec is empty: a job needs at least name, source and sink"},
		{"only comments", "# nothing yet\n", "job spec: the spec is empty: a job needs at least name, source and sink"},
		{"malformed YAML", "name: bad\nsource: {type: sqlite\n", "job spec: line 1: did not find expected ',' or '}'"},
		{"malformed JSON", `{"name": "bad", "source": {"type": "sqlite",}`, "job spec: line 1: did not find expected ',' or '}'"},
		{"option value a list", strings.Replace(goodSpec, "  mode: append", "  options: {delimiter: [a]}", 1), `job "orders-sync": sink.options: delimiter: want text, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := engine.ParseJob([]byte(tt.spec))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got  %v\nwant %s", err, tt.want)
			}
			var se *engine.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a SpecError", err)
			}
			if strings.Contains(err.Error(), "engine.") || strings.Contains(err.Error(), "not found in type") {
				t.Fatalf("error speaks Go: %v", err)
			}
		})
	}
}

// A connector option is kept as the text the spec has, whatever YAML would
// make of it: `null: NULL` is the CSV option null set to "NULL", not a null
// key that the decoder drops; the same in JSON.
func TestParseJobKeepsOptionsAsWritten(t *testing.T) {
	csvSink := strings.Replace(goodSpec, "type: parquet", "type: csv", 1) // the CSV sink's options
	for _, spec := range []string{
		strings.Replace(csvSink, "  mode: append", "  options: {null: NULL, header: true, delimiter: ';'}", 1),
		strings.Replace(csvSink, "  mode: append", "  options:\n    null: NULL\n    header: true\n    delimiter: ;", 1),
		`{"name":"j","source":{"type":"sqlite","dsn":"a.db","table":"t"},"sink":{"type":"csv","dsn":"out","options":{"null":"NULL","header":"true","delimiter":";"}}}`,
	} {
		j, err := engine.ParseJob([]byte(spec))
		if err != nil {
			t.Fatalf("ParseJob: %v\n%s", err, spec)
		}
		if got := j.Sink.Options; len(got) != 3 || got["null"] != "NULL" || got["header"] != "true" || got["delimiter"] != ";" {
			t.Fatalf("options %q from\n%s", got, spec)
		}
	}
	_, err := engine.ParseJob([]byte(strings.Replace(goodSpec, "  mode: append", "  options: {~: x}", 1)))
	if err == nil || !strings.Contains(err.Error(), `sink.options: option names are text, got "~"`) {
		t.Fatalf("a null option name: %v", err)
	}
}

func TestValidateSetFindsCyclesAndUnknownUpstreams(t *testing.T) {
	job := func(name string, after ...string) *engine.Job {
		return &engine.Job{Name: name, Schedule: &engine.ScheduleSpec{After: after}}
	}
	tests := []struct {
		name string
		jobs []*engine.Job
		want string
	}{
		{"chain ok", []*engine.Job{job("a"), job("b", "a"), job("c", "b", "a")}, ""},
		{"cycle of three", []*engine.Job{job("a", "c"), job("b", "a"), job("c", "b")}, "cycle: a -> c -> b -> a"},
		{"cycle of two", []*engine.Job{job("x", "y"), job("y", "x")}, "cycle: x -> y -> x"},
		{"unknown upstream", []*engine.Job{job("a", "ghost")}, `unknown job "ghost"`},
		{"duplicate name", []*engine.Job{job("a"), job("a")}, "same name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := engine.ValidateSet(tt.jobs)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "schedule.after") && tt.name != "duplicate name" {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRedactedSpecHidesPasswords(t *testing.T) {
	spec := strings.Replace(goodSpec, "dsn: /tmp/out", "dsn: /tmp/out\n  options: {}", 1)
	j, err := engine.ParseJob([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	j.Source.DSN = "postgres://app:hunter2@db/app"
	out := string(j.JSON())
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "app:xxxxx@db") {
		t.Fatalf("spec JSON leaks or mangles the password: %s", out)
	}
	if j.Source.DSN != "postgres://app:hunter2@db/app" {
		t.Fatal("Redacted changed the job itself")
	}
}

// Check refuses, before anything runs, a key or cursor column the source
// does not have and a table that does not exist.
func TestCheckRefusesUnknownColumns(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	mustExecSQLite(t, src, `CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT)`)
	base := func() *engine.Job {
		j := &engine.Job{Name: "check", Source: engine.SourceSpec{Type: "sqlite", DSN: src, Table: "orders", Key: []string{"id"}},
			Sink: engine.SinkSpec{Type: "parquet", DSN: filepath.Join(dir, "out")}}
		j.Normalize()
		return j
	}
	if err := engine.Check(context.Background(), base()); err != nil {
		t.Fatalf("good job refused: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*engine.Job)
		field string
		text  string
	}{
		{"unknown key column", func(j *engine.Job) { j.Source.Key = []string{"idd"} }, "source", "idd"},
		{"unknown cursor column", func(j *engine.Job) { j.Incremental = &engine.IncrementalSpec{Cursor: "updated_at"} }, "incremental.cursor", "updated_at"},
		{"missing table", func(j *engine.Job) { j.Source.Table = "ordres" }, "source", "ordres"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := base()
			tt.edit(j)
			err := engine.Check(context.Background(), j)
			var se *engine.SpecError
			if !errors.As(err, &se) || !strings.HasPrefix(se.Field, tt.field) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("got %v, want a SpecError on %s naming %q", err, tt.field, tt.text)
			}
		})
	}
}
