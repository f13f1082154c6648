package postgres

import (
	"encoding/binary"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/datashift/datashift/connectors"
)

// keyValue decodes one raw binary field into the Go value connectors.KeyOf
// gives for the same column once it is in Arrow form. Used on error paths.
func keyValue(k kind, scale int, v []byte) any {
	if v == nil {
		return nil
	}
	switch k {
	case kInt16:
		return int64(int16(binary.BigEndian.Uint16(v)))
	case kInt32:
		return int64(int32(binary.BigEndian.Uint32(v)))
	case kInt64:
		return int64(binary.BigEndian.Uint64(v))
	case kFloat32:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
	case kFloat64:
		return math.Float64frombits(binary.BigEndian.Uint64(v))
	case kBool:
		return v[0] != 0
	case kBytea:
		return append([]byte(nil), v...)
	case kUUID:
		var u connectors.UUID
		copy(u[:], v)
		return u
	case kDate:
		return time.Unix(int64(int32(binary.BigEndian.Uint32(v))+pgEpochDays)*86400, 0).UTC()
	case kTimestamp:
		return time.UnixMicro(int64(binary.BigEndian.Uint64(v)) + pgEpochMicros).UTC()
	case kTime:
		return time.Duration(binary.BigEndian.Uint64(v)) * time.Microsecond
	case kDecimal, kNumeric:
		s, err := appendNumericText(nil, v)
		if err != nil {
			return "?"
		}
		return string(s)
	case kJSONB:
		if len(v) > 0 {
			return string(v[1:])
		}
	}
	return string(v)
}

// orderedKey returns row i's key for planning: like connectors.KeyOf, except
// that decimals become int64 (scale 0, when they fit) or float64 rather than
// text, so that sorting sampled keys with connectors.CompareKeys gives their
// numeric order and split points come out ascending.
func orderedKey(rec arrow.RecordBatch, cols []int, i int) connectors.Key {
	k := connectors.KeyOf(rec, cols, i)
	for j, c := range cols {
		f := rec.Schema().Field(c)
		switch a := rec.Column(c).(type) {
		case *array.Decimal128:
			if a.IsNull(i) {
				continue
			}
			n := a.Value(i)
			scale := f.Type.(*arrow.Decimal128Type).Scale
			if scale == 0 && (n.HighBits() == 0 && n.LowBits() <= math.MaxInt64 || n.HighBits() == -1 && n.LowBits() > math.MaxInt64) {
				k[j] = int64(n.LowBits())
			} else {
				k[j] = n.ToFloat64(scale)
			}
		case *array.String:
			if !a.IsNull(i) && connectors.Logical(f) == connectors.LogicalNumeric {
				if x, err := strconv.ParseFloat(a.Value(i), 64); err == nil {
					k[j] = x
				}
			}
		}
	}
	return k
}
