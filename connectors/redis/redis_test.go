package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/parts/fixture"
	"github.com/datashift/datashift/internal/testenv"
)

var ctx = context.Background()

type env struct {
	addr, prefix string
	rdb          *redis.Client
}

func newEnv(t *testing.T) env {
	t.Helper()
	addr, prefix := testenv.RedisPrefix(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return env{addr: addr, prefix: prefix, rdb: rdb}
}

func (e env) dsn() string { return "redis://" + e.addr + "/0" }

// sink opens a sink whose commit records live under the test's prefix
// unless opts say where.
func (e env) sink(t *testing.T, mode connectors.WriteMode, opts map[string]string) *Sink {
	t.Helper()
	opts = maps.Clone(opts)
	if _, ok := opts["commit_key"]; !ok {
		opts["commit_key"] = e.prefix + "commits"
	}
	s, err := connectors.OpenSink(ctx, "redis", connectors.SinkConfig{DSN: e.dsn(), Mode: mode, Key: []string{"id"}, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*Sink)
}

func spec(part string, lease int64, schema *arrow.Schema) connectors.WriterSpec {
	return connectors.WriterSpec{Job: "job", Run: "r1", Partition: part, Lease: lease, Schema: schema}
}

// write claims partition p0 of job "job" run "r1" under lease 1, writes
// recs through one writer and commits them; it returns the record stored.
func write(t *testing.T, s *Sink, schema *arrow.Schema, recs ...arrow.RecordBatch) connectors.CommitRecord {
	t.Helper()
	sp := spec("p0", 1, schema)
	rec, err := s.Claim(ctx, sp)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	w, err := s.OpenWriter(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, r := range recs {
		if err := w.Write(ctx, r); err != nil {
			t.Fatalf("write: %v", err)
		}
		rec.Rows += r.NumRows()
	}
	rec.Commits++
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return rec
}

func (e env) hgetall(t *testing.T, key string) map[string]string {
	t.Helper()
	m, err := e.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e env) keys(t *testing.T, pattern string) []string {
	t.Helper()
	var out []string
	iter := e.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func mustDec(t *testing.T, s string, p, sc int32) decimal128.Num {
	n, err := decimal128.FromString(s, p, sc)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// everyType is two rows of fixture.Schema: id 1 with a value in every
// column, id 2 with an empty string and NULL everywhere else.
func everyType(t *testing.T) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, fixture.Schema)
	defer b.Release()
	at := time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
	b.Field(1).(*array.Int8Builder).Append(-128)
	b.Field(2).(*array.Int16Builder).Append(32767)
	b.Field(3).(*array.Int32Builder).Append(-2147483648)
	b.Field(4).(*array.Uint8Builder).Append(255)
	b.Field(5).(*array.Uint16Builder).Append(65535)
	b.Field(6).(*array.Uint32Builder).Append(4294967295)
	b.Field(7).(*array.Uint64Builder).Append(18446744073709551615)
	b.Field(8).(*array.Float32Builder).Append(1.5)
	b.Field(9).(*array.Float64Builder).Append(0.1)
	b.Field(10).(*array.BooleanBuilder).Append(true)
	b.Field(11).(*array.Decimal128Builder).Append(mustDec(t, "-12345678901234567890.0123456789", 38, 10))
	b.Field(12).(*array.Decimal128Builder).Append(decimal128.FromI64(1230))
	b.Field(13).(*array.StringBuilder).Append("123456789012345678901234567890123456789.5")
	b.Field(14).(*array.StringBuilder).AppendValues([]string{"Ünïcödé 🚀 \"q\"\n", ""}, nil)
	b.Field(15).(*array.BinaryBuilder).Append([]byte{0, 1, 0xfe, 0xff})
	b.Field(16).(*array.FixedSizeBinaryBuilder).Append([]byte{0x01, 0x90, 0xc4, 0xb8, 0xaa, 0xbb, 0x7c, 0xcd, 0x8e, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55})
	b.Field(17).(*array.StringBuilder).Append(`{"a":[1,null]}`)
	b.Field(18).(*array.Date32Builder).Append(arrow.Date32FromTime(at))
	b.Field(19).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
	b.Field(20).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
	b.Field(21).(*array.Time64Builder).Append(arrow.Time64((24*time.Hour - time.Microsecond).Microseconds()))
	for i := 1; i < len(b.Fields()); i++ {
		if i != 14 {
			b.Field(i).AppendNull()
		}
	}
	return b.NewRecordBatch()
}

var rowOne = map[string]string{
	"id": "1", "i8": "-128", "i16": "32767", "i32": "-2147483648",
	"u8": "255", "u16": "65535", "u32": "4294967295", "u64": "18446744073709551615",
	"f32": "1.5", "f64": "0.1", "flag": "true",
	"dec": "-12345678901234567890.0123456789", "money": "12.30",
	"num": "123456789012345678901234567890123456789.5",
	"s":   "Ünïcödé 🚀 \"q\"\n", "bin": "AAH+/w==",
	"uid": "0190c4b8-aabb-7ccd-8eef-001122334455", "doc": `{"a":[1,null]}`,
	"day": "2024-02-29", "ts": "2024-02-29T23:59:59.999999", "tstz": "2024-02-29T23:59:59.999999Z",
	"tod": "23:59:59.999999",
}

func TestEveryType(t *testing.T) {
	e := newEnv(t)
	rec := everyType(t)
	defer rec.Release()
	for _, bin := range []struct{ opt, want string }{{"", "AAH+/w=="}, {"hex", "0001feff"}, {"raw", "\x00\x01\xfe\xff"}} {
		opts := map[string]string{"key": e.prefix + bin.opt + "row:{id}"}
		if bin.opt != "" {
			opts["binary"] = bin.opt
		}
		s := e.sink(t, connectors.Append, opts)
		if err := s.Prepare(ctx, fixture.Schema, false); err != nil {
			t.Fatal(err)
		}
		write(t, s, fixture.Schema, rec)
		want := maps.Clone(rowOne)
		want["bin"] = bin.want
		if got := e.hgetall(t, e.prefix+bin.opt+"row:1"); !maps.Equal(got, want) {
			t.Errorf("binary %q: HGETALL row:1\n got %q\nwant %q", bin.opt, got, want)
		}
		// NULLs are absent fields; the empty string is a field.
		if got, want := e.hgetall(t, e.prefix+bin.opt+"row:2"), map[string]string{"id": "2", "s": ""}; !maps.Equal(got, want) {
			t.Errorf("HGETALL row:2 = %q, want %q", got, want)
		}
	}
}

func smallSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "qty", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	}, nil)
}

type row struct {
	id     int64
	region *string
	name   *string
	qty    *int32
}

func str(s string) *string { return &s }
func i32(v int32) *int32   { return &v }

func batch(rows ...row) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, smallSchema())
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.id)
		for i, v := range []*string{r.region, r.name} {
			if v == nil {
				b.Field(1 + i).AppendNull()
			} else {
				b.Field(1 + i).(*array.StringBuilder).Append(*v)
			}
		}
		if r.qty == nil {
			b.Field(3).AppendNull()
		} else {
			b.Field(3).(*array.Int32Builder).Append(*r.qty)
		}
	}
	return b.NewRecordBatch()
}

func TestUpsertClearsNulls(t *testing.T) {
	e := newEnv(t)
	s := e.sink(t, connectors.Upsert, map[string]string{"key": e.prefix + "o:{id}"})
	write(t, s, smallSchema(), batch(row{id: 1, region: str("eu"), name: str("first"), qty: i32(5)}, row{id: 2, name: str("other")}))
	write(t, s, smallSchema(), batch(row{id: 1, region: str("us"), qty: i32(6)}))
	if got, want := e.hgetall(t, e.prefix+"o:1"), map[string]string{"id": "1", "region": "us", "qty": "6"}; !maps.Equal(got, want) {
		t.Fatalf("after upsert with a NULL name: %q, want %q", got, want)
	}
	if got, want := e.hgetall(t, e.prefix+"o:2"), map[string]string{"id": "2", "name": "other"}; !maps.Equal(got, want) {
		t.Fatalf("untouched row: %q, want %q", got, want)
	}
}

func TestCompositeTemplateAndNullKey(t *testing.T) {
	e := newEnv(t)
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "{region}:{id}"})
	write(t, s, smallSchema(), batch(row{id: 7, region: str("eu")}, row{id: 8, region: str("us:west")}))
	if got, want := e.keys(t, e.prefix+"*"), []string{e.prefix + "commits:job:r1:p0", e.prefix + "eu:7", e.prefix + "us:west:8"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	w, err := s.OpenWriter(ctx, spec("p1", 1, smallSchema()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := batch(row{id: 9, region: str("eu")}, row{id: 10})
	defer rec.Release()
	err = w.Write(ctx, rec)
	var ve *connectors.ValueError
	if !errors.As(err, &ve) || ve.Column != "region" || connectors.CompareKeys(ve.Key, connectors.Key{int64(10)}) != 0 {
		t.Fatalf("NULL in a template column: %v, want a ValueError for region, key 10", err)
	}
	if !strings.Contains(err.Error(), `column "region", row with key 10: value NULL`) {
		t.Fatalf("message: %v", err)
	}
}

func TestTemplateErrors(t *testing.T) {
	e := newEnv(t)
	dsn := "redis://" + e.addr + "/0"
	open := func(mode connectors.WriteMode, opts map[string]string) error {
		_, err := connectors.OpenSink(ctx, "redis", connectors.SinkConfig{DSN: dsn, Mode: mode, Options: opts})
		return err
	}
	cases := []struct {
		err  error
		want string
	}{
		{open(connectors.Append, nil), "option key is required"},
		{open(connectors.Append, map[string]string{"key": "orders:{id"}), `"orders:{id": '{' without '}'`},
		{open(connectors.Append, map[string]string{"key": "orders"}), "names no column"},
		{open(connectors.Append, map[string]string{"key": "o:{id}", "ttl": "soon"}), `option ttl "soon"`},
		{open(connectors.Append, map[string]string{"key": "o:{id}", "tll": "1h"}), `unknown option "tll"`},
		{open(connectors.Truncate, map[string]string{"key": "{region}:{id}"}), "truncate needs a key template that starts with fixed text"},
		{open(connectors.Append, map[string]string{"key": "o:{id}", "pipeline": "100"}), "option pipeline is no longer supported"},
		{open(connectors.Append, map[string]string{"key": "o:{id}", "commit_key": ""}), "option commit_key is empty"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %v, want it to contain %q", c.err, c.want)
		}
	}
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "{country}:{id}"})
	err := s.Prepare(ctx, smallSchema(), false)
	if err == nil || !strings.Contains(err.Error(), `column "country" not found`) {
		t.Fatalf("template column missing: %v", err)
	}
	if _, err := s.OpenWriter(ctx, spec("p0", 1, smallSchema())); err == nil || !strings.Contains(err.Error(), `"country"`) {
		t.Fatalf("writer with a template column missing: %v", err)
	}
}

func TestTruncateOnlyTemplateHashes(t *testing.T) {
	e := newEnv(t)
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}"})
	var rows []row
	for i := int64(0); i < 1500; i++ {
		rows = append(rows, row{id: i, name: str(fmt.Sprint("n", i))})
	}
	write(t, s, smallSchema(), batch(rows...))
	// Keys that are not this dataset's: another prefix, and a string that
	// matches the pattern but is not a hash.
	if err := e.rdb.HSet(ctx, e.prefix+"other:1", "id", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Set(ctx, e.prefix+"o:counter", "42", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(e.keys(t, e.prefix+"o:*")); n != 1501 {
		t.Fatalf("%d keys before truncate, want 1501", n)
	}
	tr := e.sink(t, connectors.Truncate, map[string]string{"key": e.prefix + "o:{id}"})
	if err := tr.Prepare(ctx, smallSchema(), true); err != nil {
		t.Fatal(err)
	}
	if got, want := e.keys(t, e.prefix+"*"), []string{e.prefix + "commits:job:r1:p0", e.prefix + "o:counter", e.prefix + "other:1"}; !slices.Equal(got, want) {
		t.Fatalf("after truncate: %v, want %v", got, want)
	}
	write(t, tr, smallSchema(), batch(row{id: 5, qty: i32(1)}))
	if got := e.keys(t, e.prefix+"o:*"); !slices.Equal(got, []string{e.prefix + "o:5", e.prefix + "o:counter"}) {
		t.Fatalf("after truncate and write: %v", got)
	}
}

func TestTTL(t *testing.T) {
	e := newEnv(t)
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}", "ttl": "1h"})
	write(t, s, smallSchema(), batch(row{id: 1, name: str("x")}))
	ttl, err := e.rdb.TTL(ctx, e.prefix+"o:1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL %v, want about 1h", ttl)
	}
}

// A row over a key of another type fails the commit before anything is
// sent: inside EXEC, Redis would have applied the other rows and the record.
func TestWrongTypeSendsNothing(t *testing.T) {
	e := newEnv(t)
	if err := e.rdb.Set(ctx, e.prefix+"o:3", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}"})
	sp := spec("p0", 1, smallSchema())
	rec, err := s.Claim(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.OpenWriter(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := batch(row{id: 2, name: str("a")}, row{id: 3, name: str("b")}, row{id: 4, name: str("c")})
	defer b.Release()
	if err := w.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	err = w.Commit(ctx, connectors.CommitRecord{Job: "job", Run: "r1", Partition: "p0", Lease: 1, Position: connectors.Key{int64(4)}, Rows: 3, Commits: 1})
	if err == nil || !strings.Contains(err.Error(), "hset "+e.prefix+"o:3: WRONGTYPE") {
		t.Fatalf("commit over a string key: %v", err)
	}
	if connectors.IsTransient(err) {
		t.Fatalf("WRONGTYPE is not transient")
	}
	if got := e.keys(t, e.prefix+"o:*"); !slices.Equal(got, []string{e.prefix + "o:3"}) {
		t.Fatalf("keys after the failed commit: %v, want only the string", got)
	}
	if got, err := s.Claim(ctx, sp); err != nil || !sameRecord(got, rec) {
		t.Fatalf("record after the failed commit: %+v, %v; want %+v", got, err, rec)
	}
}

func sameRecord(a, b connectors.CommitRecord) bool {
	if connectors.CompareKeys(a.Position, b.Position) != 0 {
		return false
	}
	a.Position, b.Position = nil, nil
	return reflect.DeepEqual(a, b)
}

// Each partition's record is the string <commit_key>:<job>:<run>:<partition>
// holding its JSON, whatever the partition id holds; Forget deletes the
// run's records and nothing else.
func TestRecordLayout(t *testing.T) {
	e := newEnv(t)
	job := testenv.UniqueName("dstest") // the default commit_key is outside the test's prefix
	s, err := OpenSink(ctx, connectors.SinkConfig{DSN: e.dsn(), Mode: connectors.Append, Options: map[string]string{"key": e.prefix + "o:{id}"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run := "datashift:commits:" + job + ":r1:"
	t.Cleanup(func() {
		for _, k := range e.keys(t, "datashift:commits:"+job+":*") {
			e.rdb.Del(ctx, k)
		}
	})
	log := s.(connectors.CommitLog)
	parts := []string{"p7", `a:b*[c]?\x`}
	for i, part := range parts {
		sp := connectors.WriterSpec{Job: job, Run: "r1", Partition: part, Lease: 4, Schema: smallSchema()}
		if _, err := log.Claim(ctx, sp); err != nil {
			t.Fatal(err)
		}
		w, err := s.OpenWriter(ctx, sp)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		id := int64(i + 1)
		b := batch(row{id: id, name: str("x")})
		defer b.Release()
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		want := connectors.CommitRecord{Job: job, Run: "r1", Partition: part, Lease: 4, Position: connectors.Key{id}, Rows: 1, Bytes: 9, Commits: 1}
		if err := w.Commit(ctx, want); err != nil {
			t.Fatal(err)
		}
		key := run + part
		if typ, err := e.rdb.Type(ctx, key).Result(); err != nil || typ != "string" {
			t.Fatalf("TYPE %s: %q, %v; want string", key, typ, err)
		}
		raw, err := e.rdb.Get(ctx, key).Result()
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		var got connectors.CommitRecord
		if err := json.Unmarshal([]byte(raw), &got); err != nil || !sameRecord(got, want) {
			t.Fatalf("record %s, want %+v", raw, want)
		}
	}
	want := []string{run + parts[1], run + parts[0]}
	if got := e.keys(t, "datashift:commits:"+job+":*"); !slices.Equal(got, want) {
		t.Fatalf("record keys %q, want %q", got, want)
	}
	if err := log.Forget(ctx, job, "r1"); err != nil {
		t.Fatal(err)
	}
	if got := e.keys(t, "datashift:commits:"+job+":*"); len(got) != 0 {
		t.Fatalf("record keys after Forget: %q", got)
	}
	for _, k := range []string{e.prefix + "o:1", e.prefix + "o:2"} {
		if got := e.hgetall(t, k); got["name"] != "x" {
			t.Fatalf("row %s after Forget: %q", k, got)
		}
	}
	if err := log.Forget(ctx, job, "r:1"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("Forget of a run with ':': %v", err)
	}
	if _, err := log.Claim(ctx, connectors.WriterSpec{Job: "a:b", Run: "r1", Partition: "p0", Lease: 1}); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("Claim of a job with ':': %v", err)
	}
}

// Forget finds the run's records with SCAN MATCH, the commit_key, job and
// run quoted for the glob, and deletes only records of that job and run:
// not those of runs the glob would match unquoted, nor a look-alike record
// of a sink whose commit_key is <commit_key>:<job>.
func TestForgetQuotesTheGlob(t *testing.T) {
	e := newEnv(t)
	commitKey := e.prefix + `c[1]*?\`
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}", "commit_key": commitKey})
	lookAlike := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}", "commit_key": commitKey + ":j*"})
	claim := func(s *Sink, job, run, part string) string {
		t.Helper()
		if _, err := s.Claim(ctx, connectors.WriterSpec{Job: job, Run: run, Partition: part, Lease: 1}); err != nil {
			t.Fatal(err)
		}
		return s.commitKey + ":" + job + ":" + run + ":" + part
	}
	gone := []string{claim(s, "j*", "r?", "p0"), claim(s, "j*", "r?", "x:*")}
	kept := []string{
		claim(s, "j*", "r1", "p0"),
		claim(s, "jj", "r?", "p0"),
		claim(s, "j*", "r?x", "p0"),
		claim(lookAlike, "r?", "z", "p0"), // commitKey:j*:r?:z:p0
	}
	if err := e.rdb.Set(ctx, commitKey+":j*:r?:junk", "not a record", 0).Err(); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, commitKey+":j*:r?:junk")
	if err := s.Forget(ctx, "j*", "r?"); err != nil {
		t.Fatal(err)
	}
	for _, k := range gone {
		if n, err := e.rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("%s after Forget: exists %d, %v; want it gone", k, n, err)
		}
	}
	for _, k := range kept {
		if n, err := e.rdb.Exists(ctx, k).Result(); err != nil || n != 1 {
			t.Errorf("%s after Forget: exists %d, %v; want it kept", k, n, err)
		}
	}
}

// The commit records stay out of the dataset's way: Truncate keeps them
// even when the template's pattern matches them, a row whose key would
// land among them is refused at Write, and a template whose every key
// would is refused at open.
func TestCommitRecordsOutOfTheWay(t *testing.T) {
	e := newEnv(t)
	opts := map[string]string{"key": e.prefix + "{id}", "commit_key": e.prefix + "commits"}
	s := e.sink(t, connectors.Append, opts)
	want := write(t, s, smallSchema(), batch(row{id: 1}, row{id: 2}))
	tr := e.sink(t, connectors.Truncate, opts)
	if err := tr.Prepare(ctx, smallSchema(), true); err != nil {
		t.Fatal(err)
	}
	if got := e.keys(t, e.prefix+"*"); !slices.Equal(got, []string{e.prefix + "commits:job:r1:p0"}) {
		t.Fatalf("after truncate: %v, want the commit record alone", got)
	}
	if got, err := tr.Claim(ctx, spec("p0", 1, smallSchema())); err != nil || !sameRecord(got, want) {
		t.Fatalf("record after truncate: %+v, %v; want %+v", got, err, want)
	}

	s = e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "{name}:{id}", "commit_key": e.prefix + "log"})
	w, err := s.OpenWriter(ctx, spec("p0", 1, smallSchema()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := batch(row{id: 1, name: str("logs")}, row{id: 2, name: str("log")})
	defer b.Release()
	var ve *connectors.ValueError
	if err := w.Write(ctx, b); !errors.As(err, &ve) || ve.Column != "name" || connectors.CompareKeys(ve.Key, connectors.Key{int64(2)}) != 0 ||
		!strings.Contains(err.Error(), "among the commit records") {
		t.Fatalf("a row keyed among the commit records: %v, want a ValueError for the row with key 2", err)
	}

	for _, c := range []struct{ key, commitKey string }{{"datashift:commits:{id}", ""}, {e.prefix + "log:x{id}", e.prefix + "log"}} {
		o := map[string]string{"key": c.key}
		if c.commitKey != "" {
			o["commit_key"] = c.commitKey
		}
		_, err := OpenSink(ctx, connectors.SinkConfig{DSN: e.dsn(), Options: o})
		if err == nil || !strings.Contains(err.Error(), "among the commit records") {
			t.Errorf("template %q, commit_key %q: %v, want a refusal", c.key, c.commitKey, err)
		}
	}
}

// execHook runs interfere right before the first MULTI/EXEC it sees (or
// before every one, when always), that is after the transaction's WATCH
// and checks: a change of a watched key there aborts the EXEC. It counts
// the EXECs sent and those aborted.
type execHook struct {
	mu             sync.Mutex
	execs, aborted int
	interfere      func()
	always         bool
}

func (h *execHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *execHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *execHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "multi" {
			return next(ctx, cmds)
		}
		h.mu.Lock()
		h.execs++
		f := h.interfere
		if !h.always {
			h.interfere = nil
		}
		h.mu.Unlock()
		if f != nil {
			f()
		}
		err := next(ctx, cmds)
		if errors.Is(err, redis.TxFailedErr) {
			h.mu.Lock()
			h.aborted++
			h.mu.Unlock()
		}
		return err
	}
}

func (h *execHook) set(f func()) {
	h.mu.Lock()
	h.execs, h.aborted, h.interfere, h.always = 0, 0, f, false
	h.mu.Unlock()
}

func (h *execHook) count() (execs, aborted int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.execs, h.aborted
}

// A commit or claim watches the partition's own record and rows only: a
// change of another partition's record aborts nothing. An EXEC aborted by
// a change of a row key is checked again and retried, a few times at
// most; one aborted by a claim of a newer lease is ErrLeaseLost with
// nothing written.
func TestAbortedExec(t *testing.T) {
	e := newEnv(t)
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}"})
	hook := &execHook{}
	s.client.AddHook(hook)
	records := e.prefix + "commits:job:r1:"
	otherPartition := func() {
		if err := e.rdb.Set(ctx, records+"p9", `{"job":"job","run":"r1","partition":"p9","lease":1}`, 0).Err(); err != nil {
			t.Error(err)
		}
	}
	otherWriter := func() {
		if err := e.rdb.HSet(ctx, e.prefix+"o:1", "name", "other").Err(); err != nil {
			t.Error(err)
		}
	}
	newerLease := func(lease int) func() {
		return func() {
			rec := fmt.Sprintf(`{"job":"job","run":"r1","partition":"p0","lease":%d}`, lease)
			if err := e.rdb.Set(ctx, records+"p0", rec, 0).Err(); err != nil {
				t.Error(err)
			}
		}
	}
	want := func(what string, execs, aborted int) {
		t.Helper()
		if n, a := hook.count(); n != execs || a != aborted {
			t.Fatalf("%s sent %d MULTI/EXECs, %d aborted; want %d, %d aborted", what, n, a, execs, aborted)
		}
	}

	hook.set(otherPartition)
	sp := spec("p0", 1, smallSchema())
	if _, err := s.Claim(ctx, sp); err != nil {
		t.Fatalf("claim beside another partition's claim: %v", err)
	}
	want("a claim beside another partition's", 1, 0)
	w, err := s.OpenWriter(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := batch(row{id: 1, name: str("a")}, row{id: 2, name: str("b")})
	defer b.Release()
	if err := w.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := e.keys(t, e.prefix+"o:*"); len(got) != 0 {
		t.Fatalf("keys before the commit: %v", got)
	}
	hook.set(otherPartition)
	rec := connectors.CommitRecord{Job: "job", Run: "r1", Partition: "p0", Lease: 1, Position: connectors.Key{int64(2)}, Rows: 2, Commits: 1}
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatalf("commit beside another partition's: %v", err)
	}
	want("a commit beside another partition's", 1, 0)
	if got := e.keys(t, e.prefix+"o:*"); len(got) != 2 {
		t.Fatalf("keys after the commit: %v", got)
	}

	b2 := batch(row{id: 1, name: str("c")})
	defer b2.Release()
	if err := w.Write(ctx, b2); err != nil {
		t.Fatal(err)
	}
	hook.set(otherWriter)
	rec.Rows, rec.Commits = 3, 2
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatalf("commit aborted by a row key's change: %v", err)
	}
	want("a commit aborted by a row key's change", 2, 1)
	if got := e.hgetall(t, e.prefix+"o:1"); got["name"] != "c" {
		t.Fatalf("row after the retried commit: %q", got)
	}

	b3 := batch(row{id: 1, name: str("d")})
	defer b3.Release()
	if err := w.Write(ctx, b3); err != nil {
		t.Fatal(err)
	}
	hook.set(otherWriter)
	hook.always = true
	rec.Rows, rec.Commits = 4, 3
	err = w.Commit(ctx, rec)
	if err == nil || !connectors.IsTransient(err) || !strings.Contains(err.Error(), fmt.Sprint(maxAttempts, " transactions in a row aborted")) {
		t.Fatalf("commit aborted every time: %v, want a transient error after %d attempts", err, maxAttempts)
	}
	want("a commit aborted every time", maxAttempts, maxAttempts)
	if got, err := s.Claim(ctx, sp); err != nil || got.Commits != 2 {
		t.Fatalf("record after the failed commit: %+v, %v; want the second commit's", got, err)
	}
	if got := e.hgetall(t, e.prefix+"o:1"); got["name"] != "other" {
		t.Fatalf("row after the failed commit: %q, want the other writer's", got)
	}

	hook.set(newerLease(2))
	if err := w.Commit(ctx, rec); !errors.Is(err, connectors.ErrLeaseLost) || !strings.Contains(err.Error(), "partition p0") {
		t.Fatalf("commit aborted by a newer lease: %v, want ErrLeaseLost naming the partition", err)
	}
	want("a commit aborted by a newer lease", 1, 1)
	if got := e.hgetall(t, e.prefix+"o:1"); got["name"] != "other" {
		t.Fatalf("row after the fenced commit: %q", got)
	}

	hook.set(newerLease(5))
	if _, err := s.Claim(ctx, spec("p0", 3, smallSchema())); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("claim aborted by a newer lease: %v, want ErrLeaseLost", err)
	}
	want("a claim aborted by a newer lease", 1, 1)
}

// barrier lets n goroutines through together, again and again; once a
// wait times out it is broken and lets everyone through.
type barrier struct {
	mu      sync.Mutex
	n, in   int
	gen     chan struct{}
	broken  bool
	timeout time.Duration
}

func newBarrier(n int, timeout time.Duration) *barrier {
	return &barrier{n: n, gen: make(chan struct{}), timeout: timeout}
}

// wait reports whether all n arrived before the timeout.
func (b *barrier) wait() bool {
	b.mu.Lock()
	if b.broken {
		b.mu.Unlock()
		return false
	}
	ch := b.gen
	if b.in++; b.in == b.n {
		close(ch)
		b.gen, b.in = make(chan struct{}), 0
		b.mu.Unlock()
		return true
	}
	b.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-time.After(b.timeout):
		b.mu.Lock()
		b.broken = true
		b.mu.Unlock()
		return false
	}
}

// Partitions of one run claim and commit at once through sinks of their
// own, as the engine's do, and none of them aborts another's transaction.
// Every partition's MULTI/EXEC waits, after its WATCH and checks, until
// all partitions have got that far: a lock that let one partition at a
// time through would leave the others short of it (a timeout), and keys
// shared by partitions would abort all EXECs but the first.
func TestConcurrentCommitsOfOneRun(t *testing.T) {
	e := newEnv(t)
	const parts, commits, rows = 8, 5, 200
	together := newBarrier(parts, 10*time.Second)
	var apart sync.Once
	hooks := make([]*execHook, parts)
	var wg sync.WaitGroup
	errs := make(chan error, parts)
	for p := range parts {
		s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}"})
		hooks[p] = &execHook{}
		hooks[p].set(func() {
			if !together.wait() {
				apart.Do(func() {
					t.Errorf("the partitions did not all reach MULTI/EXEC together: something lets them through one at a time, or some retried an aborted EXEC")
				})
			}
		})
		hooks[p].always = true
		s.client.AddHook(hooks[p])
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				sp := spec(fmt.Sprint("p", p), 1, smallSchema())
				rec, err := s.Claim(ctx, sp)
				if err != nil {
					return err
				}
				w, err := s.OpenWriter(ctx, sp)
				if err != nil {
					return err
				}
				defer w.Close()
				for c := range commits {
					var rs []row
					for i := range rows {
						rs = append(rs, row{id: int64(p*commits*rows + c*rows + i), name: str("n")})
					}
					b := batch(rs...)
					err := w.Write(ctx, b)
					b.Release()
					if err != nil {
						return err
					}
					rec.Rows += rows
					rec.Commits++
					if err := w.Commit(ctx, rec); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for p, h := range hooks {
		if n, a := h.count(); n != 1+commits || a != 0 {
			t.Errorf("partition p%d sent %d MULTI/EXECs, %d aborted; want %d (a claim and %d commits), none aborted", p, n, a, 1+commits, commits)
		}
	}
	if n := len(e.keys(t, e.prefix+"o:*")); n != parts*commits*rows {
		t.Fatalf("%d keys, want %d", n, parts*commits*rows)
	}
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}"})
	for p := range parts {
		if got, err := s.Claim(ctx, spec(fmt.Sprint("p", p), 1, smallSchema())); err != nil || got.Commits != commits || got.Rows != commits*rows {
			t.Fatalf("record of p%d: %+v, %v", p, got, err)
		}
	}
}

func TestDSNPasswordNeverShown(t *testing.T) {
	_, err := connectors.OpenSink(ctx, "redis", connectors.SinkConfig{DSN: "redis://:s3cret@127.0.0.1:bad/0", Options: map[string]string{"key": "o:{id}"}})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad DSN: %v", err)
	}
	s, err := connectors.OpenSink(ctx, "redis", connectors.SinkConfig{DSN: "redis://:s3cret@127.0.0.1:1/0", Options: map[string]string{"key": "o:{id}"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Prepare(ctx, smallSchema(), false)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable server: %v", err)
	}
	if !connectors.IsTransient(err) {
		t.Fatalf("connection refused should be transient: %v", err)
	}
}
