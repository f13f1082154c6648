package textform

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

func TestParseDecimalIsExact(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
		p, s          int32
	}{
		{in: "12.34", p: 10, s: 2, want: "12.34"},
		{in: "12.3", p: 10, s: 2, want: "12.30"},
		{in: "-0.01", p: 10, s: 2, want: "-0.01"},
		{in: "+7", p: 3, s: 0, want: "7"},
		{in: "12.340", p: 10, s: 2, want: "12.34"}, // a trailing zero loses nothing
		{in: "12.345", p: 10, s: 2, err: "more than 2 fractional digits"},
		{in: "123456789", p: 8, s: 0, err: "does not fit decimal(8,0)"},
		{in: "1e5", p: 10, s: 0, err: "not a decimal"},
		{in: ".", p: 10, s: 0, err: "not a decimal"},
		{in: "99999999999999999999999999999999999999", p: 38, s: 0, want: "99999999999999999999999999999999999999"},
	} {
		n, err := ParseDecimal(c.in, c.p, c.s)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseDecimal(%q, %d, %d): %v, want error %q", c.in, c.p, c.s, err, c.err)
			}
		case err != nil:
			t.Errorf("ParseDecimal(%q): %v", c.in, err)
		case connectors.DecimalString(n, c.s) != c.want:
			t.Errorf("ParseDecimal(%q) = %s, want %s", c.in, connectors.DecimalString(n, c.s), c.want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2024-02-29T23:59:59.123456Z":    time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC),
		"2024-02-29 23:59:59.123456":     time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC),
		"2024-02-29T23:59:59+02:00":      time.Date(2024, 2, 29, 21, 59, 59, 0, time.UTC),
		"2024-02-29T23:59:59.5-01:30":    time.Date(2024, 3, 1, 1, 29, 59, 500000000, time.UTC),
		"0001-01-01T00:00:00.000000":     time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		"9999-12-31T23:59:59.999999Z":    time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		"2024-01-01T00:00:00.000000001Z": time.Date(2024, 1, 1, 0, 0, 0, 1, time.UTC),
	} {
		got, err := ParseTimestamp(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestParseTimestampRefuses(t *testing.T) {
	for _, in := range []string{"2024-13-01T00:00:00", "2024-02-30 00:00:00", "yesterday", "2024-01-01", "2024-01-01T25:00:00Z"} {
		if got, err := ParseTimestamp(in); err == nil {
			t.Errorf("ParseTimestamp(%q) = %v, want an error", in, got)
		}
	}
}

// TestFloatsRoundTrip checks that the shortest form reads back to the same
// bits, specials included.
func TestFloatsRoundTrip(t *testing.T) {
	f := arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float64}
	vals := []float64{0.1, 1.0 / 3, -0.0, math.MaxFloat64, 5e-324, math.Inf(1), math.Inf(-1), math.NaN(), 1e21, 123456789012345680}
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	b.AppendValues(vals, nil)
	arr := b.NewArray()
	defer arr.Release()
	fm, err := NewFormatter(f, arr, Base64)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewParser(f, Base64)
	back := array.NewFloat64Builder(memory.DefaultAllocator)
	for i := range vals {
		if err := p(back, string(fm(nil, i))); err != nil {
			t.Fatal(err)
		}
	}
	got := back.NewFloat64Array()
	defer got.Release()
	for i, v := range vals {
		if math.Float64bits(got.Value(i)) != math.Float64bits(v) && !(math.IsNaN(v) && math.IsNaN(got.Value(i))) {
			t.Errorf("%v came back as %v (text %q)", v, got.Value(i), fm(nil, i))
		}
	}
}

func TestFinerThanUnitRefused(t *testing.T) {
	ts := arrow.Field{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond}}
	p, _ := NewParser(ts, Base64)
	b := array.NewTimestampBuilder(memory.DefaultAllocator, ts.Type.(*arrow.TimestampType))
	if err := p(b, "2024-01-01T00:00:00.0000001"); err == nil || !strings.Contains(err.Error(), "finer than the column's unit") {
		t.Fatalf("sub-microsecond text into a microsecond column: %v", err)
	}
	tod := arrow.Field{Name: "t", Type: arrow.FixedWidthTypes.Time64us}
	p, _ = NewParser(tod, Base64)
	tb := array.NewTime64Builder(memory.DefaultAllocator, arrow.FixedWidthTypes.Time64us.(*arrow.Time64Type))
	if err := p(tb, "10:00:00.1234567"); err == nil {
		t.Fatal("sub-microsecond time accepted")
	}
}

func TestNanosecondsKept(t *testing.T) {
	typ := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	b := array.NewTimestampBuilder(memory.DefaultAllocator, typ)
	b.Append(arrow.Timestamp(time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC).UnixNano()))
	arr := b.NewArray()
	defer arr.Release()
	fm, err := NewFormatter(arrow.Field{Name: "at", Type: typ}, arr, Base64)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(fm(nil, 0)); got != "2024-01-02T03:04:05.123456789Z" {
		t.Fatalf("nanosecond timestamp written as %q", got)
	}
	tb := array.NewTime64Builder(memory.DefaultAllocator, arrow.FixedWidthTypes.Time64ns.(*arrow.Time64Type))
	tb.Append(arrow.Time64(time.Hour + 1))
	tarr := tb.NewArray()
	defer tarr.Release()
	fm, _ = NewFormatter(arrow.Field{Name: "t", Type: tarr.DataType()}, tarr, Base64)
	if got := string(fm(nil, 0)); got != "01:00:00.000000001" {
		t.Fatalf("nanosecond time written as %q", got)
	}
}
