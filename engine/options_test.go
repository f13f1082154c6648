package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/datashift/datashift/engine"
)

// An option name the connector does not declare is refused by Validate,
// naming the field and the names the connector knows; declared ones pass.
func TestValidateRefusesUnknownOptions(t *testing.T) {
	spec := strings.Replace(goodSpec, "  key: [id]\n", "  key: [id]\n  options: {busy_timeout: \"500\", busy_timeot: \"1\"}\n", 1)
	spec = strings.Replace(spec, "  mode: append\n", "  mode: append\n  options: {compression: zstd, compresion: zstd, rows: \"9\"}\n", 1)
	_, err := engine.ParseJob([]byte(spec))
	var se engine.SpecErrors
	if !errors.As(err, &se) {
		t.Fatalf("ParseJob: %v, want SpecErrors", err)
	}
	want := map[string]string{
		"source.options.busy_timeot": "unknown option for sqlite source (known: busy_timeout, journal_mode)",
		"sink.options.compresion":    "unknown option for parquet sink (known: compression, row_group_rows)",
		"sink.options.rows":          "unknown option for parquet sink (known: compression, row_group_rows)",
	}
	if len(se) != len(want) {
		t.Errorf("errors: %v, want %d", se, len(want))
	}
	for _, e := range se {
		if want[e.Field] != e.Reason {
			t.Errorf("%s: %q, want %q", e.Field, e.Reason, want[e.Field])
		}
	}

	none := strings.Replace(goodSpec, "type: sqlite", "type: parquet", 1)
	none = strings.Replace(none, "  key: [id]\n", "  options: {x: \"1\"}\n", 1)
	_, err = engine.ParseJob([]byte(none))
	if err == nil || !strings.Contains(err.Error(), "source.options.x: unknown option: the parquet source takes no options") {
		t.Errorf("option on a source that takes none: %v", err)
	}

	ok := strings.Replace(goodSpec, "  mode: append\n", "  mode: append\n  options: {compression: zstd}\n", 1)
	if _, err := engine.ParseJob([]byte(ok)); err != nil {
		t.Errorf("declared option refused: %v", err)
	}
}
