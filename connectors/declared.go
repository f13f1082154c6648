package connectors

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// MetaType carries a column's declared type in the source, in a portable
// form (TYPES.md "Declared types"). The Arrow type says what the values are;
// this says what the column was (char(84) rather than text, timestamp(3)
// rather than timestamp), so a sink creating its table can declare the same
// where the target has that type. Unlike MetaSQLType, which is the source's
// own spelling and only informational, sinks read it.
const MetaType = "datashift.type"

// Declared is a portable declared type: one of
//
//	char(n) varchar(n) varchar numeric(p,s)
//	tinyint smallint mediumint integer bigint  (each optionally " unsigned")
//	timestamp[(p)] timestamptz[(p)] time[(p)]  (p fractional second digits, 0-6)
type Declared struct {
	Name     string // char, varchar, numeric, tinyint … bigint, timestamp, timestamptz, time
	Unsigned bool   // integers only
	// N is the length of char/varchar (0: varchar without one), the
	// precision of numeric, or the fractional second digits of a time type
	// (-1: not given, the default of 6).
	N     int
	Scale int // numeric only
}

func (d Declared) String() string {
	switch d.Name {
	case "char":
		return "char(" + strconv.Itoa(d.N) + ")"
	case "varchar":
		if d.N > 0 {
			return "varchar(" + strconv.Itoa(d.N) + ")"
		}
		return "varchar"
	case "numeric":
		return fmt.Sprintf("numeric(%d,%d)", d.N, d.Scale)
	case "timestamp", "timestamptz", "time":
		if d.N >= 0 {
			return d.Name + "(" + strconv.Itoa(d.N) + ")"
		}
		return d.Name
	}
	if d.Unsigned {
		return d.Name + " unsigned"
	}
	return d.Name
}

// Fractional is the fractional second digits of a time type, 6 when the
// declared type gives none.
func (d Declared) Fractional() int {
	if d.N < 0 {
		return 6
	}
	return d.N
}

// WithDeclared adds d to a field's metadata.
func WithDeclared(md arrow.Metadata, d Declared) arrow.Metadata {
	return arrow.NewMetadata(slices.Concat(md.Keys(), []string{MetaType}), slices.Concat(md.Values(), []string{d.String()}))
}

// DeclaredType returns the field's portable declared type, when it has one
// that parses and agrees with the field's Arrow type. A sink that gets
// false uses its mapping from the Arrow type alone, so a type it does not
// know, or one a transformation made stale, never picks a column that
// cannot hold the values.
func DeclaredType(f arrow.Field) (Declared, bool) {
	s, ok := f.Metadata.GetValue(MetaType)
	if !ok {
		return Declared{}, false
	}
	d, ok := parseDeclared(s)
	if !ok || !d.fits(f) {
		return Declared{}, false
	}
	return d, true
}

func parseDeclared(s string) (Declared, bool) {
	var d Declared
	s, d.Unsigned = strings.CutSuffix(s, " unsigned")
	name, args, hasArgs := strings.Cut(s, "(")
	d.Name, d.N = name, -1
	var nums []int
	if hasArgs {
		inner, ok := strings.CutSuffix(args, ")")
		if !ok {
			return d, false
		}
		for _, a := range strings.Split(inner, ",") {
			n, err := strconv.Atoi(a)
			if err != nil || n < 0 {
				return d, false
			}
			nums = append(nums, n)
		}
	}
	switch name {
	case "char":
		if len(nums) != 1 {
			return d, false
		}
		d.N = nums[0]
	case "varchar":
		switch len(nums) {
		case 0:
			d.N = 0
		case 1:
			d.N = nums[0]
			if d.N == 0 {
				return d, false
			}
		default:
			return d, false
		}
	case "numeric":
		if len(nums) != 2 || nums[0] < 1 || nums[1] > nums[0] {
			return d, false
		}
		d.N, d.Scale = nums[0], nums[1]
	case "timestamp", "timestamptz", "time":
		switch len(nums) {
		case 0:
		case 1:
			if nums[0] > 6 {
				return d, false
			}
			d.N = nums[0]
		default:
			return d, false
		}
	case "tinyint", "smallint", "mediumint", "integer", "bigint":
		if hasArgs {
			return d, false
		}
	default:
		return d, false
	}
	if d.Unsigned && d.integerBits() == 0 {
		return d, false
	}
	return d, true
}

// integerBits is the width of an integer type's Arrow type, 0 for others.
func (d Declared) integerBits() int {
	switch d.Name {
	case "tinyint":
		return 8
	case "smallint":
		return 16
	case "mediumint", "integer":
		return 32
	case "bigint":
		return 64
	}
	return 0
}

// fits reports whether d describes values of f's Arrow type as the sources
// map them (TYPES.md).
func (d Declared) fits(f arrow.Field) bool {
	logical := Logical(f)
	switch d.Name {
	case "char", "varchar":
		id := f.Type.ID()
		return logical == "" && (id == arrow.STRING || id == arrow.LARGE_STRING)
	case "numeric":
		if t, ok := f.Type.(*arrow.Decimal128Type); ok {
			return int(t.Precision) == d.N && int(t.Scale) == d.Scale
		}
		return logical == LogicalNumeric && f.Type.ID() == arrow.STRING
	case "timestamp", "timestamptz":
		t, ok := f.Type.(*arrow.TimestampType)
		return ok && (t.TimeZone != "") == (d.Name == "timestamptz")
	case "time":
		id := f.Type.ID()
		return id == arrow.TIME32 || id == arrow.TIME64
	}
	var bits int
	var unsigned bool
	switch f.Type.ID() {
	case arrow.INT8:
		bits = 8
	case arrow.INT16:
		bits = 16
	case arrow.INT32:
		bits = 32
	case arrow.INT64:
		bits = 64
	case arrow.UINT8:
		bits, unsigned = 8, true
	case arrow.UINT16:
		bits, unsigned = 16, true
	case arrow.UINT32:
		bits, unsigned = 32, true
	case arrow.UINT64:
		bits, unsigned = 64, true
	}
	return bits != 0 && bits == d.integerBits() && unsigned == d.Unsigned
}
