package connectors

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func declField(t arrow.DataType, md arrow.Metadata, declared string) arrow.Field {
	return arrow.Field{Name: "c", Type: t, Metadata: arrow.NewMetadata(
		append(md.Keys(), MetaType), append(md.Values(), declared))}
}

// A declared type is used only when it parses and agrees with the Arrow
// type; anything else leaves the sink to its Arrow mapping.
func TestDeclaredType(t *testing.T) {
	str, none := arrow.BinaryTypes.String, arrow.Metadata{}
	num := WithLogical(LogicalNumeric)
	ts := &arrow.TimestampType{Unit: arrow.Microsecond}
	tstz := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	for _, c := range []struct {
		typ      arrow.DataType
		md       arrow.Metadata
		declared string
		ok       bool
	}{
		{str, none, "char(84)", true},
		{str, none, "varchar(20)", true},
		{str, none, "varchar", true},
		{str, none, "char", false},       // char always has its n
		{str, none, "varchar(0)", false}, // written as "varchar"
		{str, WithLogical(LogicalJSON), "varchar(20)", false},
		{arrow.BinaryTypes.Binary, none, "char(4)", false},
		{&arrow.Decimal128Type{Precision: 12, Scale: 2}, none, "numeric(12,2)", true},
		{&arrow.Decimal128Type{Precision: 12, Scale: 2}, none, "numeric(12,3)", false},
		{str, num, "numeric(50,5)", true},
		{str, none, "numeric(50,5)", false},
		{str, num, "numeric(5,6)", false},
		{str, num, "numeric(5,-2)", false},
		{arrow.PrimitiveTypes.Int16, none, "smallint", true},
		{arrow.PrimitiveTypes.Int32, none, "mediumint", true},
		{arrow.PrimitiveTypes.Int32, none, "integer", true},
		{arrow.PrimitiveTypes.Int32, none, "smallint", false},
		{arrow.PrimitiveTypes.Uint32, none, "integer unsigned", true},
		{arrow.PrimitiveTypes.Uint32, none, "integer", false},
		{arrow.PrimitiveTypes.Int8, none, "tinyint unsigned", false},
		{arrow.PrimitiveTypes.Int64, none, "bigint(20)", false},
		{str, none, "char(4) unsigned", false},
		{ts, none, "timestamp(3)", true},
		{ts, none, "timestamp", true},
		{ts, none, "timestamp(7)", false},
		{ts, none, "timestamptz(3)", false},
		{tstz, none, "timestamptz(0)", true},
		{tstz, none, "timestamp(0)", false},
		{arrow.FixedWidthTypes.Time64us, none, "time(2)", true},
		{str, none, "text", false},
		{str, none, "CHAR(4)", false},
	} {
		d, ok := DeclaredType(declField(c.typ, c.md, c.declared))
		if ok != c.ok {
			t.Errorf("%s on %s: ok=%v, want %v", c.declared, c.typ, ok, c.ok)
			continue
		}
		if ok && d.String() != c.declared {
			t.Errorf("%s on %s: reads back as %q", c.declared, c.typ, d.String())
		}
	}
	if _, ok := DeclaredType(arrow.Field{Name: "c", Type: str}); ok {
		t.Error("a field without datashift.type has a declared type")
	}
}

func TestWithDeclared(t *testing.T) {
	md := WithDeclared(WithLogical(LogicalNumeric), Declared{Name: "numeric", N: 50, Scale: 5})
	f := arrow.Field{Name: "n", Type: arrow.BinaryTypes.String, Metadata: md}
	if Logical(f) != LogicalNumeric {
		t.Errorf("logical type lost: %v", md)
	}
	if d, ok := DeclaredType(f); !ok || d.String() != "numeric(50,5)" {
		t.Errorf("declared %v %v", d, ok)
	}
	if got := (Declared{Name: "timestamp", N: -1}).Fractional(); got != 6 {
		t.Errorf("timestamp without precision: %d fractional digits", got)
	}
}
