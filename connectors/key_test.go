package connectors

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestKeyJSONRoundTrip(t *testing.T) {
	u, _ := ParseUUID("0190c8a4-7b3e-7c1a-9d2f-1234567890ab")
	keys := []Key{
		{int64(math.MinInt64)},
		{int64(math.MaxInt64), "Ünïcödé 🚀"},
		{uint64(math.MaxUint64)},
		{1.5, true, []byte{0, 1, 255}},
		{time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC), u, nil},
		{13*time.Hour + 59*time.Minute + 123456*time.Microsecond},
		{"invalid \xff\xfe utf-8", "ok"},
	}
	for _, k := range keys {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		var back Key
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if CompareKeys(k, back) != 0 {
			t.Fatalf("%v came back as %v (%s)", k, back, b)
		}
		for i := range k {
			if k[i] != nil && back[i] != nil && typeName(k[i]) != typeName(back[i]) {
				t.Fatalf("column %d: %T came back as %T", i, k[i], back[i])
			}
		}
	}
}

func typeName(v any) string { return reflectType(v) }

func TestCompareKeysByteOrder(t *testing.T) {
	tests := []struct {
		a, b Key
		want int
	}{
		{Key{int64(-1)}, Key{int64(1)}, -1},
		{Key{"B"}, Key{"a"}, -1},      // bytes, not case-insensitive
		{Key{"z"}, Key{"é"}, -1},      // UTF-8 bytes: é is 0xC3 0xA9
		{Key{"a"}, Key{"a "}, -1},     // no padding
		{Key{nil}, Key{int64(0)}, -1}, // NULL first
		{Key{int64(1), "b"}, Key{int64(1), "a"}, 1},
		{Key{int64(1), "a"}, Key{int64(1), "a"}, 0},
	}
	for _, tt := range tests {
		if got := CompareKeys(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareKeys(%v, %v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareKeys(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareKeys(%v, %v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

// The same values in different Arrow widths and decimal spellings give the
// same checksum; a duplicated or changed row does not.
func TestChecksumNormalizesAndCounts(t *testing.T) {
	mk := func(idType arrow.DataType, amount arrow.Field, ids []int64, amounts []string) arrow.RecordBatch {
		schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: idType}, amount}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		for i, id := range ids {
			switch ib := b.Field(0).(type) {
			case *array.Int32Builder:
				ib.Append(int32(id))
			case *array.Int64Builder:
				ib.Append(id)
			}
			switch ab := b.Field(1).(type) {
			case *array.Decimal128Builder:
				n, err := decimal128.FromString(amounts[i], 12, 2)
				if err != nil {
					t.Fatal(err)
				}
				ab.Append(n)
			case *array.StringBuilder:
				ab.Append(amounts[i])
			}
		}
		return b.NewRecordBatch()
	}
	dec := arrow.Field{Name: "amount", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}}
	num := arrow.Field{Name: "amount", Type: arrow.BinaryTypes.String, Metadata: WithLogical(LogicalNumeric)}
	a := mk(arrow.PrimitiveTypes.Int32, dec, []int64{1, 2}, []string{"1.50", "-0.10"})
	b := mk(arrow.PrimitiveTypes.Int64, num, []int64{2, 1}, []string{"-0.1", "1.5"})
	dup := mk(arrow.PrimitiveTypes.Int64, num, []int64{1, 1}, []string{"1.5", "1.5"})
	changed := mk(arrow.PrimitiveTypes.Int64, num, []int64{1, 2}, []string{"1.5", "-0.2"})
	sum := func(r arrow.RecordBatch) Checksum { var c Checksum; c.Add(r, nil); return c }
	if sum(a) != sum(b) {
		t.Fatalf("same rows, different checksums: %v vs %v", sum(a), sum(b))
	}
	if sum(dup) == sum(a) || sum(changed) == sum(a) {
		t.Fatal("a duplicated or changed row kept the checksum")
	}
}

func TestDecimalString(t *testing.T) {
	tests := []struct {
		n     int64
		scale int32
		want  string
	}{{150, 2, "1.50"}, {-5, 2, "-0.05"}, {0, 3, "0.000"}, {12345, 0, "12345"}, {7, -2, "700"}}
	for _, tt := range tests {
		if got := DecimalString(decimal128.FromI64(tt.n), tt.scale); got != tt.want {
			t.Errorf("DecimalString(%d, %d) = %q, want %q", tt.n, tt.scale, got, tt.want)
		}
	}
}

func reflectType(v any) string { return fmt.Sprintf("%T", v) }

func TestContains(t *testing.T) {
	r := Range{Lo: ik(10), Hi: ik(20)}
	tests := []struct {
		r    Range
		k    Key
		want bool
	}{
		{r, ik(9), false},
		{r, ik(10), true}, // Lo is inclusive
		{r, ik(19), true},
		{r, ik(20), false}, // Hi is exclusive
		{r, Key{nil}, false},
		{Range{}, ik(math.MinInt64), true},
		{Range{}, Key{nil}, false}, // Range{} is the non-NULL keys
		{Range{Nulls: true}, Key{nil}, true},
		{Range{Nulls: true}, ik(1), false},
		{Range{Nulls: true}, Key{int64(1), nil}, true}, // any NULL column
		{Range{Lo: ik(1, 5)}, Key{int64(2), nil}, false},
		{r.Resumed(ik(15)), ik(15), false}, // After is exclusive
		{r.Resumed(ik(15)), ik(16), true},
		{r.Resumed(ik(15)), ik(12), false},
		{Range{Pages: &PageRange{}}, ik(1), false},
		{Range{Lo: ik(1, 5), Hi: ik(2, 0)}, ik(1, 9), true}, // row-value order
		{Range{Lo: ik(1, 5), Hi: ik(2, 0)}, ik(2, -1), true},
		{Range{Lo: ik(1, 5), Hi: ik(2, 0)}, ik(1, 4), false},
	}
	for _, tt := range tests {
		if got := tt.r.Contains(tt.k); got != tt.want {
			t.Errorf("Contains(%s, %s) = %v, want %v", tt.r, tt.k, got, tt.want)
		}
	}
}

func ik(vs ...int64) Key {
	k := make(Key, len(vs))
	for i, v := range vs {
		k[i] = v
	}
	return k
}
