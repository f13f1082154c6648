package reference

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
)

var update = flag.Bool("update", false, "rewrite connectors/REFERENCE.md from the code")

const connectorsDir = "../.."

// TestReference fails when REFERENCE.md is not what the code says: a
// connector gained, lost or re-described an option or an ability, or a
// connector was added. go test -update rewrites it.
func TestReference(t *testing.T) {
	if *update {
		if err := Write(connectorsDir); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := Render(connectorsDir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(connectorsDir, "REFERENCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("connectors/REFERENCE.md is out of date with the connectors' registrations; run go test ./connectors/internal/reference -update\n%s", firstDiff(got, want))
	}
}

// TestOptionReads fails when a connector's code reads an option it did not
// declare: every read must go through its declarations (Options.Values,
// then OptionValues.Lookup, which panics on an undeclared name at run
// time), and every name it looks up literally must be declared.
func TestOptionReads(t *testing.T) {
	for _, typ := range Types() {
		raw, names, err := Reads(filepath.Join(connectorsDir, typ))
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range raw {
			t.Errorf("%s: %s reads a config's Options directly; read them through the declared options (Values, then Lookup)", typ, at)
		}
		var declared []string
		if o, ok := connectors.SourceOptions(typ); ok {
			declared = append(declared, o.Names()...)
		}
		if o, ok := connectors.SinkOptions(typ); ok {
			declared = append(declared, o.Names()...)
		}
		for _, n := range names {
			if !slices.Contains(declared, n) {
				t.Errorf("%s: code looks up option %q, which it does not declare (declared: %v)", typ, n, declared)
			}
		}
	}
}

// TestReadsFindsBypasses checks the static check itself on a connector
// written the wrong way.
func TestReadsFindsBypasses(t *testing.T) {
	dir := t.TempDir()
	src := `package bad

import "github.com/datashift/datashift/connectors"

var sinkOptions = connectors.Options{{Name: "a", Doc: "a"}}

func open(cfg connectors.SinkConfig) {
	_ = cfg.Options["b"]
	ov, _ := sinkOptions.Values(cfg.Options)
	ov.Lookup("c")
}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, names, err := Reads(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 1 || !strings.Contains(raw[0], "bad.go:8") {
		t.Errorf("raw reads = %v, want the one on line 8", raw)
	}
	if !slices.Equal(names, []string{"c"}) {
		t.Errorf("looked-up names = %v, want [c]", names)
	}
}

// TestLookupPanicsOnUndeclared: the run-time half of the guard.
func TestLookupPanicsOnUndeclared(t *testing.T) {
	ov, err := connectors.Options{{Name: "a", Doc: "a"}}.Values(map[string]string{"a": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := ov.Lookup("a"); v != "1" || !ok {
		t.Errorf("Lookup(a) = %q, %v", v, ok)
	}
	defer func() {
		if recover() == nil {
			t.Error("Lookup of an undeclared option did not panic")
		}
	}()
	ov.Lookup("b")
}

// TestEveryConnectorDocumented: notes for a type nobody registers are dead.
func TestEveryConnectorDocumented(t *testing.T) {
	types := Types()
	for typ := range connectorNotes {
		if !slices.Contains(types, typ) {
			t.Errorf("notes for %q, which no connector registers", typ)
		}
	}
}

func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  file: " + gl + "\n  code: " + wl
		}
	}
	return ""
}
