package connectors_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

// A decimal column and a float column holding the same numbers sum alike
// (a CSV sink reads a numeric column back as floats); a decimal with more
// digits than a float keeps does not.
func TestChecksumDecimalEqualsFloat(t *testing.T) {
	sum := func(b array.Builder) connectors.Checksum {
		arr := b.NewArray()
		defer arr.Release()
		rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "v", Type: arr.DataType(), Nullable: true}}, nil), []arrow.Array{arr}, int64(arr.Len()))
		defer rec.Release()
		var c connectors.Checksum
		c.Add(rec, nil)
		return c
	}
	dec := func(vals ...string) connectors.Checksum {
		b := array.NewDecimal128Builder(memory.DefaultAllocator, &arrow.Decimal128Type{Precision: 30, Scale: 17})
		defer b.Release()
		for _, v := range vals {
			n, err := decimal128.FromString(v, 30, 17)
			if err != nil {
				t.Fatal(err)
			}
			b.Append(n)
		}
		return sum(b)
	}
	flt := func(vals ...float64) connectors.Checksum {
		b := array.NewFloat64Builder(memory.DefaultAllocator)
		defer b.Release()
		b.AppendValues(vals, nil)
		return sum(b)
	}
	if d, f := dec("12.50", "-0.00", "100", "0.1", "1234567.89"), flt(12.5, math.Copysign(0, -1), 100, 0.1, 1234567.89); d != f {
		t.Errorf("same numbers: decimal %v, float %v", d, f)
	}
	if d, f := dec("0.12345678901234567"), flt(0.12345678901234567); d == f {
		t.Errorf("a decimal a float cannot hold sums like the float: %v", d)
	}
}

// In JSON the sum is hex, as printed: no reader rounds it.
func TestChecksumJSON(t *testing.T) {
	c := connectors.Checksum{Rows: 3, Sum: 0xfedcba9876543211}
	b, err := json.Marshal(c)
	if err != nil || string(b) != `{"rows":3,"sum":"fedcba9876543211"}` {
		t.Fatalf("%s, %v", b, err)
	}
	var back connectors.Checksum
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Fatalf("read back %v, %v", back, err)
	}
}
