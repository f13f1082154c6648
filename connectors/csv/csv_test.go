package csv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/conformance"
	"github.com/datashift/datashift/connectors/internal/parts/fixture"
)

var ctx = context.Background()

func openSink(t testing.TB, dir string, opts map[string]string) connectors.Sink {
	t.Helper()
	s, err := connectors.OpenSink(ctx, "csv", connectors.SinkConfig{DSN: dir, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openSource(t testing.TB, dsn string, cfg connectors.SourceConfig) connectors.Source {
	t.Helper()
	cfg.DSN = dsn
	s, err := connectors.OpenSource(ctx, "csv", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRoundTripEveryType(t *testing.T) {
	for name, opts := range map[string]map[string]string{
		"defaults":              nil,
		"semicolon, \\N, hex":   {"delimiter": ";", "null": `\N`, "binary": "hex"},
		"tab, NULL, no header":  {"delimiter": "tab", "null": "NULL", "header": "false"},
		"pipe, empty null, hex": {"delimiter": "|", "binary": "hex"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSink(t, dir, opts)
			if err := s.Prepare(ctx, fixture.Schema, false); err != nil {
				t.Fatal(err)
			}
			a, b := fixture.Rows(0, 45), fixture.Rows(45, 70)
			defer a.Release()
			defer b.Release()
			fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, a)
			fixture.Write(t, s, fixture.Spec("p1", fixture.Schema), true, b)

			srcOpts := map[string]string{"schema": fixture.CSVSchemaOption}
			for k, v := range opts {
				srcOpts[k] = v
			}
			src := openSource(t, dir, connectors.SourceConfig{Options: srcOpts, BatchRows: 16})
			want := append(fixture.Values(a), fixture.Values(b)...)
			fixture.Equal(t, fixture.ReadAll(t, src, connectors.Range{}, fixture.Schema), want, fixture.Schema)
			second := connectors.Range{Pages: &connectors.PageRange{Lo: 1}}
			fixture.Equal(t, fixture.ReadAll(t, src, second, fixture.Schema), fixture.Values(b), fixture.Schema)
			if n, err := src.(connectors.Counter).Count(ctx, connectors.Range{}); err != nil || n != 70 {
				t.Fatalf("count: %d, %v; want 70", n, err)
			}
			st, _ := src.(connectors.Sampler).Stats(ctx, 0)
			if st.PageCount != 2 || st.Method != "files" || st.Rows < 35 || st.Rows > 140 {
				t.Fatalf("stats %+v: want 2 files and about 70 rows", st)
			}
		})
	}
}

// TestTextForms pins the exact bytes a user sees in the file.
func TestTextForms(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "amount", Type: &arrow.Decimal128Type{Precision: 10, Scale: 3}, Nullable: true},
		{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "local", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "tod", Type: arrow.FixedWidthTypes.Time64us, Nullable: true},
		{Name: "raw", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "uid", Type: connectors.UUIDType, Nullable: true, Metadata: connectors.WithLogical(connectors.LogicalUUID)},
		{Name: "doc", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: connectors.WithLogical(connectors.LogicalJSON)},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "ratio", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	at := time.Date(2024, 2, 29, 23, 59, 59, 120000000, time.UTC)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{`say "hi", ok`, "", ""}, []bool{true, true, false})
	b.Field(2).(*array.Decimal128Builder).AppendValues([]decimal128.Num{decimal128.FromI64(-1500), decimal128.FromI64(7), {}}, []bool{true, true, false})
	b.Field(3).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{arrow.Timestamp(at.UnixMicro()), 0, 0}, []bool{true, true, false})
	b.Field(4).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{arrow.Timestamp(at.UnixMicro()), 0, 0}, []bool{true, true, false})
	b.Field(5).(*array.Date32Builder).AppendValues([]arrow.Date32{arrow.Date32FromTime(at), 0, 0}, []bool{true, true, false})
	b.Field(6).(*array.Time64Builder).AppendValues([]arrow.Time64{arrow.Time64((13*3600 + 5) * 1e6), 1, 0}, []bool{true, true, false})
	b.Field(7).(*array.BinaryBuilder).AppendValues([][]byte{{0xde, 0xad, 0xbe, 0xef}, {}, nil}, []bool{true, true, false})
	b.Field(8).(*array.FixedSizeBinaryBuilder).AppendValues([][]byte{
		{0x01, 0x90, 0xc4, 0xb8, 0xaa, 0xbb, 0x7c, 0xcd, 0x8e, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55}, make([]byte, 16), nil}, []bool{true, true, false})
	b.Field(9).(*array.StringBuilder).AppendValues([]string{`{"a": [1, "x"]}`, "null", ""}, []bool{true, true, false})
	b.Field(10).(*array.BooleanBuilder).AppendValues([]bool{true, false, false}, []bool{true, true, false})
	b.Field(11).(*array.Float64Builder).AppendValues([]float64{0.1, -2.5e-300, 0}, []bool{true, true, false})
	rec := b.NewRecordBatch()
	defer rec.Release()

	dir := t.TempDir()
	s := openSink(t, dir, nil)
	fixture.Write(t, s, fixture.Spec("p0", sc), true, rec)
	got, err := os.ReadFile(filepath.Join(dir, "r1-p0-000001.csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := "id,name,amount,at,local,day,tod,raw,uid,doc,ok,ratio\r\n" +
		`1,"say ""hi"", ok",-1.500,2024-02-29T23:59:59.120000Z,2024-02-29T23:59:59.120000,2024-02-29,13:00:05.000000,3q2+7w==,0190c4b8-aabb-7ccd-8eef-001122334455,"{""a"": [1, ""x""]}",true,0.1` + "\r\n" +
		`2,"",0.007,1970-01-01T00:00:00.000000Z,1970-01-01T00:00:00.000000,1970-01-01,00:00:00.000001,"",00000000-0000-0000-0000-000000000000,null,false,-2.5e-300` + "\r\n" +
		"3,,,,,,,,,,,\r\n"
	if string(got) != want {
		t.Fatalf("file:\n%q\nwant:\n%q", got, want)
	}
}

func TestInference(t *testing.T) {
	dir := t.TempDir()
	body := "id,code,price,ok,at,local,day,tod,name,empty\n" +
		"1,007,1.5,true,2024-01-02T03:04:05Z,2024-01-02 03:04:05.5,2024-01-02,10:11:12,\"a, b\",\n" +
		"2,010,2,FALSE,2024-01-02T03:04:05.123456+02:00,2024-01-02T03:04:05,1999-12-31,23:59:59.999999,\"\",\n" +
		"-3,,-7e3,,,,,,,\n"
	if err := os.WriteFile(filepath.Join(dir, "data.csv"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	src := openSource(t, dir, connectors.SourceConfig{})
	sc, _ := src.Schema(ctx)
	wantTypes := []string{"int64", "utf8", "float64", "bool", "timestamp[us, tz=UTC]", "timestamp[us]", "date32", "time64[us]", "utf8", "utf8"}
	for i, f := range sc.Fields() {
		if f.Type.String() != wantTypes[i] {
			t.Errorf("column %q inferred as %s, want %s", f.Name, f.Type, wantTypes[i])
		}
	}
	rows := fixture.ReadAll(t, src, connectors.Range{}, nil)
	ts := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v.UTC() }
	want := [][]any{
		{int64(1), "007", 1.5, true, ts("2024-01-02T03:04:05Z"), ts("2024-01-02T03:04:05.5Z"), ts("2024-01-02T00:00:00Z"), 10*time.Hour + 11*time.Minute + 12*time.Second, "a, b", nil},
		{int64(2), "010", 2.0, false, ts("2024-01-02T01:04:05.123456Z"), ts("2024-01-02T03:04:05Z"), ts("1999-12-31T00:00:00Z"), 24*time.Hour - time.Microsecond, "", nil},
		{int64(-3), nil, -7000.0, nil, nil, nil, nil, nil, nil, nil},
	}
	fixture.Equal(t, rows, want, sc)
}

func TestInferredTypeFailsLaterWithLine(t *testing.T) {
	dir := t.TempDir()
	var body strings.Builder
	body.WriteString("id,qty\n")
	for i := 1; i <= 20; i++ {
		body.WriteString(strconv.Itoa(i) + "," + strconv.Itoa(i*2) + "\n")
	}
	body.WriteString("21,lots\n")
	path := filepath.Join(dir, "x.csv")
	if err := os.WriteFile(path, []byte(body.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src := openSource(t, dir, connectors.SourceConfig{Options: map[string]string{"infer_rows": "10"}})
	err := src.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), path+`: line 22: column "qty": not an int64: "lots"`) {
		t.Fatalf("error %v", err)
	}
}

func TestParser(t *testing.T) {
	dir := t.TempDir()
	// LF and CRLF mixed, a quoted field over two lines (with its CRLF kept),
	// doubled quotes, a bare quote inside an unquoted field, no final newline.
	body := "a,b\r\n" + "1,\"two\r\nlines\"\n" + "2,say \"\"x\"\"\n" + "3,\"q\"\"uote\"\r\n" + "4,5\"6"
	if err := os.WriteFile(filepath.Join(dir, "p.csv"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	src := openSource(t, dir, connectors.SourceConfig{Options: map[string]string{"schema": "a:int32,b:string"}})
	got := fixture.ReadAll(t, src, connectors.Range{}, nil)
	want := [][]any{{int64(1), "two\r\nlines"}, {int64(2), `say ""x""`}, {int64(3), `q"uote`}, {int64(4), `5"6`}}
	sc, _ := src.Schema(ctx)
	fixture.Equal(t, got, want, sc)
}

func TestMalformed(t *testing.T) {
	cases := map[string]string{
		"a,b\n1,\"open\n2,3\n":   `line 2: malformed CSV: quoted field not closed`,
		"a,b\n1,\"x\"y\n":        `line 2: malformed CSV: text after a closing quote`,
		"a,b\n1,2\n3\n":          `line 3: 1 fields, want 2`,
		"a,b\n1,2\n2,x\n":        `line 3: column "b": not an int64: "x"`,
		"a,b\n1,2\n3,4,5\n":      `line 3: 3 fields, want 2`,
		"a,b\n1,\"\"\n9,\"2\"\n": "",
	}
	for body, want := range cases {
		dir := t.TempDir()
		path := filepath.Join(dir, "m.csv")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		// Open samples the first rows, so it may be the one to fail.
		src, err := connectors.OpenSource(ctx, "csv", connectors.SourceConfig{DSN: dir, Options: map[string]string{"schema": "a:int64,b:int64"}})
		if err == nil {
			err = src.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error { return nil })
		}
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", body, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), path+": "+want)):
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.csv"), []byte("id,name\n1,x\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.csv"), []byte("id,nom\n2,y\n"), 0o644)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"unknown sink option", func() error {
			_, err := connectors.OpenSink(ctx, "csv", connectors.SinkConfig{DSN: dir, Options: map[string]string{"delimeter": ";"}})
			return err
		}(), `unknown option "delimeter"`},
		{"bad delimiter", func() error {
			_, err := connectors.OpenSink(ctx, "csv", connectors.SinkConfig{DSN: dir, Options: map[string]string{"delimiter": "::"}})
			return err
		}(), `option delimiter "::"`},
		{"raw binary", func() error {
			_, err := connectors.OpenSink(ctx, "csv", connectors.SinkConfig{DSN: dir, Options: map[string]string{"binary": "raw"}})
			return err
		}(), `option binary "raw"`},
		{"unknown source option", func() error {
			_, err := connectors.OpenSource(ctx, "csv", connectors.SourceConfig{DSN: dir, Options: map[string]string{"scheme": "x"}})
			return err
		}(), `unknown option "scheme"`},
		{"bad type", func() error {
			_, err := connectors.OpenSource(ctx, "csv", connectors.SourceConfig{DSN: dir, Options: map[string]string{"schema": "id:int64,name:varchar"}})
			return err
		}(), `column "name": unknown type "varchar"`},
		{"headers differ", func() error {
			_, err := connectors.OpenSource(ctx, "csv", connectors.SourceConfig{DSN: dir})
			return err
		}(), filepath.Join(dir, "b.csv") + `: header differs from ` + filepath.Join(dir, "a.csv") + `: column 2 is "nom", want "name"`},
		{"header vs schema", func() error {
			_, err := connectors.OpenSource(ctx, "csv", connectors.SourceConfig{DSN: filepath.Join(dir, "a.csv"), Options: map[string]string{"schema": "id:int64,title:string"}})
			return err
		}(), filepath.Join(dir, "a.csv") + `: header does not match option schema: column 2 is "name", want "title"`},
		{"missing column", func() error {
			_, err := connectors.OpenSource(ctx, "csv", connectors.SourceConfig{DSN: filepath.Join(dir, "a.csv"), Columns: []string{"id", "age"}})
			return err
		}(), `column "age" not found`},
		{"no files", func() error {
			_, err := connectors.OpenSource(ctx, "csv", connectors.SourceConfig{DSN: t.TempDir()})
			return err
		}(), `no .csv files in`},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, c.err, c.want)
		}
	}
}

func TestColumnsProjection(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.csv"), []byte("id,name,qty\n1,x,5\n2,,6\n"), 0o644)
	src := openSource(t, dir, connectors.SourceConfig{Columns: []string{"qty", "id"}})
	sc, _ := src.Schema(ctx)
	fixture.Equal(t, fixture.ReadAll(t, src, connectors.Range{}, nil), [][]any{{int64(5), int64(1)}, {int64(6), int64(2)}}, sc)
}

func ids(t testing.TB, dir string) []int64 {
	t.Helper()
	src := openSource(t, dir, connectors.SourceConfig{Columns: []string{"id"}, Options: map[string]string{"schema": fixture.CSVSchemaOption}})
	var out []int64
	for _, row := range fixture.ReadAll(t, src, connectors.Range{}, nil) {
		out = append(out, row[0].(int64))
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestResumeKeepsCommittedParts: a partition resumed under a new lease
// continues from the sink's record; every committed part stays, the
// unfinished one goes.
func TestResumeKeepsCommittedParts(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	r := fixture.Rows
	fixture.Write(t, s, fixture.Spec("p1", fixture.Schema), true, r(1000, 1010))
	spec := fixture.Spec("p0", fixture.Schema)
	rec := fixture.Write(t, s, spec, true, r(0, 100))
	// The first attempt goes on: two more commits, then a crash in the
	// middle of a part (no Commit, no Close).
	w, err := s.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range []arrow.RecordBatch{r(100, 130), r(130, 160), r(160, 170)} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			rec.Rows += b.NumRows()
			rec.Commits++
			if err := w.Commit(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	committed := []string{"_datashift", "r1-p0-000001.csv", "r1-p0-000002.csv", "r1-p0-000003.csv", "r1-p1-000001.csv"}
	if got, want := fixture.ListDir(t, dir), []string{"_datashift", "r1-p0-000001.csv", "r1-p0-000002.csv", "r1-p0-000003.csv", "r1-p0-000004.csv.1.tmp", "r1-p1-000001.csv"}; !slices.Equal(got, want) {
		t.Fatalf("before resume %v, want %v", got, want)
	}

	spec.Lease = 2
	got, err := s.(connectors.CommitLog).Claim(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 160 || got.Commits != 3 || got.Lease != 2 {
		t.Fatalf("claim after the crash: %+v, want 160 rows in 3 commits", got)
	}
	if got := fixture.ListDir(t, dir); !slices.Equal(got, committed) {
		t.Fatalf("after the claim %v, want the committed parts %v", got, committed)
	}
	if rec := fixture.Write(t, s, spec, true, r(160, 200)); rec.Rows != 200 || rec.Commits != 4 {
		t.Fatalf("record after resume %+v", rec)
	}
	if got, want := ids(t, dir), append(seq(0, 200), seq(1000, 1010)...); !slices.Equal(got, want) {
		t.Fatalf("ids after resume: %d rows, want 0..199 and 1000..1009", len(got))
	}
	src := openSource(t, dir, connectors.SourceConfig{Options: map[string]string{"schema": fixture.CSVSchemaOption}})
	if got, want := fixture.SourceChecksum(t, src, connectors.Range{}), fixture.Checksum(r(0, 200), r(1000, 1010)); got != want {
		t.Fatalf("checksum %v, want %v", got, want)
	}
	// Closing without Commit abandons the rows and leaves no file.
	fixture.Write(t, s, spec, false, r(200, 210))
	if got := ids(t, dir); len(got) != 210 {
		t.Fatalf("after an abandoned write: %d rows, want 210", len(got))
	}
	if got := fixture.ListDir(t, dir); slices.ContainsFunc(got, func(n string) bool { return strings.HasSuffix(n, ".tmp") }) {
		t.Fatalf("abandoned part left behind: %v", got)
	}
}

func TestTruncateRemovesOnlyParts(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, fixture.Rows(0, 20))
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, fixture.Rows(20, 30))
	keep := []string{"_datashift", "lookup.csv", "notes.txt", "p0-01.csv"}
	for _, n := range keep[1:] {
		os.WriteFile(filepath.Join(dir, n), []byte("x\n"), 0o644)
	}
	if err := s.Prepare(ctx, fixture.Schema, true); err != nil {
		t.Fatal(err)
	}
	if got := fixture.ListDir(t, dir); !slices.Equal(got, keep) {
		t.Fatalf("after truncate %v, want %v", got, keep)
	}
	if got := fixture.ListDir(t, filepath.Join(dir, "_datashift")); len(got) != 0 {
		t.Fatalf("commit log after truncate: %v", got)
	}
}

// conformanceSchema spells conformance.Schema in the schema option.
const conformanceSchema = "id:int64,name:string,amount:decimal(18,4),ratio:float64,active:bool,created:timestamptz,payload:binary"

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	conformance.Run(t, conformance.Harness{
		Type: typeName,
		SourceConfig: func(table string) connectors.SourceConfig {
			return connectors.SourceConfig{DSN: dir, Table: table, Options: map[string]string{"schema": conformanceSchema}}
		},
		SinkConfig: func(table string) connectors.SinkConfig { return connectors.SinkConfig{DSN: dir, Table: table} },
		Caps:       conformance.Caps{Positions: true, KeylessRange: connectors.Range{}},
	})
}

// writeFiles writes name → body files into a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestResumedReadSkips: a read resumed after a position opens no earlier
// file and does not convert the rows it skips in the position's file, but
// parses them (a quoted line break is not a row).
func TestResumedReadSkips(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.csv": "id,v\n1,x\n2,y\n",
		"b.csv": "id,v\n10,\"two\nlines\"\noops,bad\n\n12,z\n13,w\n",
	})
	src := openSource(t, dir, connectors.SourceConfig{BatchRows: 1, Options: map[string]string{"schema": "id:int64,v:string"}})
	if err := os.Remove(filepath.Join(dir, "a.csv")); err != nil { // a read that opens it fails
		t.Fatal(err)
	}
	pr := src.(connectors.PositionReader)
	var got [][]any
	var last []connectors.Key
	err := pr.ReadPositioned(ctx, connectors.Range{}.Resumed(connectors.Key{int64(1), int64(1)}), func(rec arrow.RecordBatch, pos connectors.Key) error {
		got = append(got, fixture.Values(rec)...)
		last = append(last, pos)
		return nil
	})
	if err != nil {
		t.Fatalf("resumed read: %v", err)
	}
	sc, _ := src.Schema(ctx)
	fixture.Equal(t, got, [][]any{{int64(12), "z"}, {int64(13), "w"}}, sc)
	if want := []connectors.Key{{int64(1), int64(2)}, {int64(1), int64(3)}}; len(last) != 2 ||
		connectors.CompareKeys(last[0], want[0]) != 0 || connectors.CompareKeys(last[1], want[1]) != 0 {
		t.Fatalf("positions %v, want %v", last, want)
	}
	if err := src.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error { return nil }); err == nil {
		t.Fatal("a whole read did not need the removed file")
	}
	pages := connectors.Range{Pages: &connectors.PageRange{Lo: 1}}
	if n, err := src.(connectors.Counter).Count(ctx, pages.Resumed(connectors.Key{int64(1), int64(0)})); err != nil || n != 3 {
		t.Fatalf("count after (1, 0): %d, %v; want 3", n, err)
	}
	if err := src.Read(ctx, pages.Resumed(connectors.Key{int64(1), int64(0)}), func(arrow.RecordBatch) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), `line 4: column "id": not an int64: "oops"`) {
		t.Fatalf("reading the bad row: %v", err)
	}
}

func TestFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{"b.csv": "id\n1\n", "a.csv": "id\n2\n3\n", "notes.txt": "x"})
	if err := os.MkdirAll(filepath.Join(dir, "_datashift"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "_datashift", "c.csv"), []byte("id\n9\n"), 0o644)
	src := openSource(t, dir, connectors.SourceConfig{})
	files, err := src.(connectors.FileSet).Files(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != filepath.Join(dir, "a.csv") || files[0].Size != 7 || files[1].Path != filepath.Join(dir, "b.csv") || files[0].ModTime.IsZero() {
		t.Fatalf("files %+v", files)
	}
	got := fixture.ReadAll(t, src, connectors.Range{Pages: &connectors.PageRange{Lo: 1}}, nil)
	if len(got) != 1 || got[0][0] != int64(1) {
		t.Fatalf("file 1 is b.csv: got %v", got)
	}
	// An empty dataset reads as no rows when the schema option says the
	// columns, and is refused when nothing does.
	empty := t.TempDir()
	src = openSource(t, empty, connectors.SourceConfig{Options: map[string]string{"schema": "id:int64"}})
	if got := fixture.ReadAll(t, src, connectors.Range{}, nil); len(got) != 0 {
		t.Fatalf("empty dataset: %v", got)
	}
	if _, err := connectors.OpenSource(ctx, "csv", connectors.SourceConfig{DSN: empty}); err == nil || !strings.Contains(err.Error(), "no schema option") {
		t.Fatalf("empty dataset without a schema: %v", err)
	}
}

func TestUnsupportedTypeNamesColumn(t *testing.T) {
	s := openSink(t, t.TempDir(), nil)
	sc := arrow.NewSchema([]arrow.Field{{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String)}}, nil)
	err := s.Prepare(ctx, sc, false)
	if err == nil || !strings.Contains(err.Error(), `column "tags": type list<item: utf8, nullable> has no text form`) {
		t.Fatalf("error %v", err)
	}
	var ve *connectors.ValueError
	if errors.As(err, &ve) {
		t.Fatalf("a schema problem is not a value error")
	}
}
