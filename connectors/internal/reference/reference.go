// Package reference writes connectors/REFERENCE.md, the reference of every
// connector, from what the code says: the options come from each
// connector's registration (connectors.RegisterSource / RegisterSink), the
// abilities from the interfaces its source and sink types are asserted to
// implement (`var _ connectors.Sampler = (*Source)(nil)` in its package).
// Only the DSN forms and the short notes in connectorNotes are written by
// hand.
//
// Regenerate after changing a connector's options or abilities:
//
//	go test ./connectors/internal/reference -update
//
// Without -update the test fails when REFERENCE.md differs from what the
// code says, and when a connector reads an option it did not declare.
package reference

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/datashift/datashift/connectors"
	// Every connector the reference covers registers itself; memory is not
	// in the binary but documented as the engine's test store.
	_ "github.com/datashift/datashift/connectors/all"
	_ "github.com/datashift/datashift/connectors/memory"
)

// notes are what the code cannot say: how to write a DSN, and what a
// connector does beyond its interfaces and options.
type notes struct {
	title  string
	dsn    []string // DSN forms, one a line
	about  string   // one paragraph on the connector
	source string   // what the source reads and how it splits; "" when there is none
	sink   string   // write modes and how a commit lands; "" when there is none
}

var connectorNotes = map[string]notes{
	"postgres": {
		title: "PostgreSQL",
		dsn: []string{
			"`postgres://user:password@host:5432/db?sslmode=disable` (a URL), or",
			"`host=… port=… user=… password=… dbname=…` (keyword/value): anything pgx.ParseConfig takes. The session's time zone, date style and client encoding are set by datashift.",
		},
		about:  "Reads with binary `COPY (SELECT …) TO STDOUT`, decoded straight into Arrow; writes with binary `COPY … FROM STDIN`, one COPY per commit in one transaction with the commit record. Upserts, and target columns of types it has no encoder for, go through a staging table and `INSERT … SELECT [ON CONFLICT … DO UPDATE]`.",
		source: "A table (`schema.table`) or a query; `where` and `columns` apply. Split by sampled key quantiles (pg_stats, TABLESAMPLE, index probes). A job that names no key is read by the table's primary key; a table with none is split by heap pages and read by ctid, as is the NULL-key range; a ctid position holds while the table does not change, or inside the exported snapshot (`snapshot: true`).",
		sink:   "Modes append, truncate, upsert (by `source.key`, which needs a primary key or unique index on those columns). `create_table` creates the target from the Arrow schema, with the source's declared types where PostgreSQL has them (types: [TYPES.md](TYPES.md)); it is loaded bare and gets, once every row is in, its key's constraint (primary key, or unique for a nullable key; from the start for upsert, which needs it) and, from a PostgreSQL source table, that table's other indexes, CHECK constraints and column defaults on the copied columns (those that need only what PostgreSQL has built in: not a sequence, a function or an extension's operator class of the source database), indexes named after the target: each index built on a connection of its own, all at once, instead of every index kept up to date row by row. A run that fails leaves the table without them until a run succeeds.",
	},
	"mysql": {
		title: "MariaDB / MySQL",
		dsn: []string{
			"`user:password@tcp(host:3306)/db` (go-sql-driver/mysql form; the database is required). datashift forces parseTime, UTC, utf8mb4, a strict sql_mode and long net timeouts whatever the DSN says.",
		},
		about:  "Tested on MariaDB 10.11. Reads one SELECT per range over the text protocol, parsed straight into Arrow builders; writes with `LOAD DATA LOCAL INFILE` from a stream, or multi-row INSERTs, one transaction per commit with the commit record. Text keys whose collation is not byte order are compared as `CAST(col AS BINARY)`, which costs the index.",
		source: "A table (`db.table`, or a name in the DSN's database) or a query; `where` and `columns` apply. Split points come from samples of the key. No exported snapshot (`snapshot: true` is refused). A job that names no key is read by the table's primary key. A table with no primary key and no key named, and the NULL-key range, have no positions: such a partition commits once, at its end, and starts over if interrupted.",
		sink:   "Modes append, truncate, upsert (by `source.key`). `create_table` creates the target from the Arrow schema, with the source's declared types where MariaDB/MySQL has them (types: [TYPES.md](TYPES.md)).",
	},
	"sqlite": {
		title: "SQLite",
		dsn: []string{
			"a file path (`orders.db`; a `?…` suffix is dropped), or",
			"a `file:` URI, given to SQLite as is (`file:orders.db?mode=ro`).",
		},
		about:  "Every reader and writer has its own connection; the file runs in WAL mode. Writers buffer their batches and hold the write lock only inside a commit (`BEGIN IMMEDIATE … COMMIT`), which also updates the commit record. Types declared by datashift store decimals, UUIDs, JSON and times as text whose bytes sort in value order ([TYPES.md](TYPES.md)).",
		source: "A table or a query; `where` and `columns` apply. Split points come from samples of the key. A job that names no key is read by the table's primary key. A table without a primary key or a key named, and the NULL-key range, are read by rowid: a rowid position holds until `VACUUM` renumbers a table without an INTEGER PRIMARY KEY. WITHOUT ROWID tables and queries have no positions.",
		sink:   "Modes append, truncate, upsert (by `source.key`). `create_table` creates the target from the Arrow schema.",
	},
	"redis": {
		title: "Redis",
		dsn: []string{
			"`redis://[user:password@]host:port/db`, or `rediss://…` for TLS.",
		},
		about: "Sink only. Each row is a hash at the key the `key` template renders; every column is a field in the text forms CSV uses; a NULL deletes the field. A commit sends its rows and the partition's commit record in one MULTI/EXEC under WATCH, after checking the lease. What survives a crash of the Redis server is up to its persistence settings (appendfsync), not to datashift.",
		sink:  "Modes append and upsert (both HSET: fields named are replaced, others kept) and truncate (SCAN for the template's pattern, then UNLINK; needs a template that starts with fixed text). Job names and run ids must not contain `:`.",
	},
	"csv": {
		title: "CSV",
		dsn: []string{
			"a directory (`file://` is stripped); a source may also name one `.csv` file. `table`, when set, is a sub-directory of it.",
		},
		about:  "RFC 4180. Values in the text forms of package textform: RFC 3339 timestamps with microseconds, exact decimals, canonical UUIDs, JSON as its text, binary in base64 or hex. A NULL is the `null` text unquoted; the same text quoted is a string.",
		source: "The sorted `.csv` files of the directory (not its sub-directories). No key order: `key`, `query`, `where` and `incremental` are refused; a run is split into file ranges and the file list is pinned to the run. A row's position is {file, row}; a resumed read skips to it without converting the rows before.",
		sink:   "Modes append and truncate. Each partition writes part files `<run>-<partition>-<seq>.csv`, one per commit with rows, each with its own header; a part's rename is the commit, its record in `_datashift/`.",
	},
	"parquet": {
		title: "Parquet",
		dsn: []string{
			"a directory (`file://` is stripped); a source may also name one `.parquet` file. `table`, when set, is a sub-directory of it.",
		},
		about:  "Through Arrow's pqarrow. The Arrow schema is stored in every file, so logical types (json, uuid, numeric) and time zones survive a round trip.",
		source: "The sorted `.parquet` files of the directory (not its sub-directories), whose schemas must agree. No key order: `key`, `query`, `where` and `incremental` are refused; a run is split into file ranges and the file list is pinned to the run. A row's position is {file, row}; a resumed read skips whole row groups by the footer's counts.",
		sink:   "Modes append and truncate. Each partition writes part files `<run>-<partition>-<seq>.parquet`, one per commit with rows; a part's rename is the commit, its record in `_datashift/`.",
	},
	"memory": {
		title: "memory (tests only)",
		dsn: []string{
			"`memory:NAME`, naming a DB made by `memory.New` in the same process.",
		},
		about:  "Tables in process memory, with faults to inject between the steps of a commit. The engine's tests use it; it runs the same conformance suite as every other connector. It is not in the binary (`connectors/all` does not import it).",
		source: "A table; only `key` and batch sizes apply (`query`, `where`, `columns`, `incremental` and `snapshot` are refused).",
		sink:   "Modes append, truncate, upsert.",
	},
}

// abilities name what an optional interface means to a user, in the order
// they are listed.
var abilities = []struct{ iface, text string }{
	{"Sampler", "statistics for planning split points (key samples, or file sizes)"},
	{"Counter", "exact row counts of a range (verification)"},
	{"CursorSource", "incremental runs (`incremental.cursor`)"},
	{"Snapshotter", "one exported snapshot for every partition (`snapshot: true`)"},
	{"PositionReader", "keyless ranges read in a fixed order and resumed by position"},
	{"FileSet", "the input file list pinned to a run; a changed file refuses the resume"},
	{"CommitLog", "commit records in the sink: resume without deleting ([COMMITS.md](COMMITS.md))"},
}

// Asserted is what a connector's package asserts its types implement:
// interface name (in package connectors) → type names.
type Asserted map[string][]string

// ReadAsserted parses the non-test files of dir for
// `var _ connectors.I = (*T)(nil)` (or `T{}`) and returns them.
func ReadAsserted(dir string) (Asserted, error) {
	files, err := parseDir(dir)
	if err != nil {
		return nil, err
	}
	out := Asserted{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, sp := range gd.Specs {
				vs := sp.(*ast.ValueSpec)
				if len(vs.Names) != 1 || vs.Names[0].Name != "_" || len(vs.Values) != 1 {
					continue
				}
				sel, ok := vs.Type.(*ast.SelectorExpr)
				if !ok || identName(sel.X) != "connectors" {
					continue
				}
				if t := assertedType(vs.Values[0]); t != "" {
					out[sel.Sel.Name] = append(out[sel.Sel.Name], t)
				}
			}
		}
	}
	return out, nil
}

// assertedType is T in (*T)(nil) or T{}; "" for anything else.
func assertedType(e ast.Expr) string {
	switch v := e.(type) {
	case *ast.CallExpr:
		if p, ok := v.Fun.(*ast.ParenExpr); ok {
			if st, ok := p.X.(*ast.StarExpr); ok {
				return identName(st.X)
			}
		}
	case *ast.CompositeLit:
		return identName(v.Type)
	}
	return ""
}

func identName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// parseDir parses the non-test Go files of dir.
func parseDir(dir string) ([]*ast.File, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	fset := token.NewFileSet()
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// sideAbilities lists the abilities of the types that assert base
// (connectors.Source or connectors.Sink).
func sideAbilities(a Asserted, base string) []string {
	types := a[base]
	var out []string
	for _, ab := range abilities {
		for _, t := range a[ab.iface] {
			if slices.Contains(types, t) {
				out = append(out, ab.text+" (`"+ab.iface+"`)")
				break
			}
		}
	}
	return out
}

// Types lists every registered connector type, sources and sinks, sorted.
func Types() []string {
	types := append(connectors.SourceTypes(), connectors.SinkTypes()...)
	slices.Sort(types)
	return slices.Compact(types)
}

// Render returns REFERENCE.md. connectorsDir is the connectors folder, whose
// sub-folder of each type's name holds its package.
func Render(connectorsDir string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`# Connector reference

<!-- Generated by "go test ./connectors/internal/reference -update"; do not edit. -->

Generated from the code: the options are what each connector declares when it
registers (and the only ones it can read), the abilities are the optional
interfaces its types implement. The DSN forms and the notes are written by hand
in connectors/internal/reference. Types and how they map between stores:
[TYPES.md](TYPES.md); commit records: [COMMITS.md](COMMITS.md).

A job spec's ` + "`source.options`" + ` and ` + "`sink.options`" + ` take string values. A name a
connector does not declare is refused when the spec is validated
(` + "`sink.options.nul: unknown option for csv sink (known: delimiter, null, header, binary)`" + `).

| type | source | sink |
|---|---|---|
`)
	types := Types()
	for _, typ := range types {
		_, src := connectors.SourceOptions(typ)
		_, snk := connectors.SinkOptions(typ)
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s |\n", typ, typ, yesNo(src), yesNo(snk))
	}
	for _, typ := range types {
		n, ok := connectorNotes[typ]
		if !ok {
			return nil, fmt.Errorf("connector %q has no notes in connectors/internal/reference", typ)
		}
		a, err := ReadAsserted(filepath.Join(connectorsDir, typ))
		if err != nil {
			return nil, fmt.Errorf("connector %q: %w", typ, err)
		}
		fmt.Fprintf(&b, "\n## %s\n\n**%s.** %s\n\nDSN:\n\n", typ, n.title, n.about)
		for _, d := range n.dsn {
			fmt.Fprintf(&b, "- %s\n", d)
		}
		if opts, ok := connectors.SourceOptions(typ); ok {
			if n.source == "" {
				return nil, fmt.Errorf("connector %q: a source with no source notes", typ)
			}
			writeSide(&b, "Source", n.source, sideAbilities(a, "Source"), opts)
		}
		if opts, ok := connectors.SinkOptions(typ); ok {
			if n.sink == "" {
				return nil, fmt.Errorf("connector %q: a sink with no sink notes", typ)
			}
			writeSide(&b, "Sink", n.sink, sideAbilities(a, "Sink"), opts)
		}
	}
	return b.Bytes(), nil
}

func writeSide(b *bytes.Buffer, side, text string, abs []string, opts connectors.Options) {
	fmt.Fprintf(b, "\n### %s\n\n%s\n", side, text)
	if len(abs) > 0 {
		b.WriteString("\nImplements:\n\n")
		for _, a := range abs {
			fmt.Fprintf(b, "- %s\n", a)
		}
	}
	if len(opts) == 0 {
		b.WriteString("\nOptions: none.\n")
		return
	}
	b.WriteString("\n| option | meaning |\n|---|---|\n")
	for _, o := range opts {
		fmt.Fprintf(b, "| `%s` | %s |\n", o.Name, strings.ReplaceAll(o.Doc, "|", `\|`))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "—"
}

// Reads lists, for the connector package in dir, how its non-test code
// touches options, for the test that keeps reads and declarations together:
// raw are uses of a config's Options field other than as the argument of
// Options.Values or Options.Unknown (reads that bypass the declarations);
// names are the string literals given to OptionValues.Lookup.
func Reads(dir string) (raw []string, names []string, err error) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, nil, err
	}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, nil, err
		}
		imports := map[string]bool{}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			name := filepath.Base(path)
			if im.Name != nil {
				name = im.Name.Name
			}
			imports[name] = true
		}
		allowed := map[ast.Expr]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			fn, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			switch fn.Sel.Name {
			case "Values", "Unknown":
				for _, a := range call.Args {
					allowed[a] = true
				}
			case "Lookup":
				if imports[identName(fn.X)] || len(call.Args) != 1 {
					return true
				}
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					names = append(names, s)
				}
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Options" || imports[identName(sel.X)] || allowed[sel] {
				return true
			}
			raw = append(raw, fset.Position(sel.Pos()).String())
			return true
		})
	}
	return raw, names, nil
}

// Write writes REFERENCE.md into connectorsDir.
func Write(connectorsDir string) error {
	b, err := Render(connectorsDir)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(connectorsDir, "REFERENCE.md"), b, 0o644)
}
