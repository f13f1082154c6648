package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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

func (e env) sink(t *testing.T, mode connectors.WriteMode, opts map[string]string) connectors.Sink {
	t.Helper()
	s, err := connectors.OpenSink(ctx, "redis", connectors.SinkConfig{DSN: "redis://" + e.addr + "/0", Mode: mode, Key: []string{"id"}, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func write(t *testing.T, s connectors.Sink, schema *arrow.Schema, resume *connectors.ResumePoint, commit bool, recs ...arrow.RecordBatch) {
	t.Helper()
	w, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: schema, Resume: resume})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, r := range recs {
		if err := w.Write(ctx, r); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if commit {
		if _, err := w.Commit(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
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
		write(t, s, fixture.Schema, nil, true, rec)
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
	write(t, s, smallSchema(), nil, true, batch(row{id: 1, region: str("eu"), name: str("first"), qty: i32(5)}, row{id: 2, name: str("other")}))
	write(t, s, smallSchema(), nil, true, batch(row{id: 1, region: str("us"), qty: i32(6)}))
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
	write(t, s, smallSchema(), nil, true, batch(row{id: 7, region: str("eu")}, row{id: 8, region: str("us:west")}))
	if got, want := e.keys(t, e.prefix+"*"), []string{e.prefix + "eu:7", e.prefix + "us:west:8"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	w, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p1", Schema: smallSchema()})
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
	if _, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: smallSchema()}); err == nil || !strings.Contains(err.Error(), `"country"`) {
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
	write(t, s, smallSchema(), nil, true, batch(rows...))
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
	if got, want := e.keys(t, e.prefix+"*"), []string{e.prefix + "o:counter", e.prefix + "other:1"}; !slices.Equal(got, want) {
		t.Fatalf("after truncate: %v, want %v", got, want)
	}
	write(t, tr, smallSchema(), nil, true, batch(row{id: 5, qty: i32(1)}))
	if got := e.keys(t, e.prefix+"o:*"); !slices.Equal(got, []string{e.prefix + "o:5", e.prefix + "o:counter"}) {
		t.Fatalf("after truncate and write: %v", got)
	}
}

func TestResumeRewritesToSameState(t *testing.T) {
	e := newEnv(t)
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}", "pipeline": "7"})
	mk := func(from, to int64, tag string) arrow.RecordBatch {
		var rows []row
		for i := from; i < to; i++ {
			r := row{id: i, name: str(fmt.Sprint(tag, i))}
			if i%3 == 0 {
				r.qty = i32(int32(i))
			}
			rows = append(rows, r)
		}
		return batch(rows...)
	}
	write(t, s, smallSchema(), nil, true, mk(0, 100, "n"))
	// An attempt that sent some pipelines and died before Commit.
	write(t, s, smallSchema(), &connectors.ResumePoint{LastKey: connectors.Key{int64(99)}}, false, mk(100, 150, "n"))
	write(t, s, smallSchema(), &connectors.ResumePoint{LastKey: connectors.Key{int64(99)}}, true, mk(100, 200, "n"))
	keys := e.keys(t, e.prefix+"o:*")
	if len(keys) != 200 {
		t.Fatalf("%d keys, want 200", len(keys))
	}
	for _, id := range []int64{0, 1, 99, 120, 149, 150, 199} {
		want := map[string]string{"id": fmt.Sprint(id), "name": fmt.Sprint("n", id)}
		if id%3 == 0 {
			want["qty"] = fmt.Sprint(id)
		}
		if got := e.hgetall(t, fmt.Sprintf("%so:%d", e.prefix, id)); !maps.Equal(got, want) {
			t.Fatalf("row %d: %q, want %q", id, got, want)
		}
	}
}

func TestTTL(t *testing.T) {
	e := newEnv(t)
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}", "ttl": "1h"})
	write(t, s, smallSchema(), nil, true, batch(row{id: 1, name: str("x")}))
	ttl, err := e.rdb.TTL(ctx, e.prefix+"o:1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL %v, want about 1h", ttl)
	}
}

func TestReplyErrorNamesKey(t *testing.T) {
	e := newEnv(t)
	if err := e.rdb.Set(ctx, e.prefix+"o:3", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := e.sink(t, connectors.Append, map[string]string{"key": e.prefix + "o:{id}"})
	w, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: smallSchema()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := batch(row{id: 2, name: str("a")}, row{id: 3, name: str("b")}, row{id: 4, name: str("c")})
	defer rec.Release()
	if err := w.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	_, err = w.Commit(ctx)
	if err == nil || !strings.Contains(err.Error(), "hset "+e.prefix+"o:3: WRONGTYPE") {
		t.Fatalf("commit over a string key: %v", err)
	}
	if connectors.IsTransient(err) {
		t.Fatalf("WRONGTYPE is not transient")
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
