package connectors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cespare/xxhash/v2"
)

// Checksum is an order-independent fingerprint of a set of rows: the row
// count and the sum of per-row hashes. Sums (not XOR) so that a duplicated row
// changes it. Values are normalized first, so the same rows read from two
// stores with different type maps (int32 vs int64, "1.50" vs "1.5", a
// decimal 12.5 vs a float 12.5, jsonb's spacing) give the same checksum.
type Checksum struct {
	Rows int64
	Sum  uint64
}

func (c Checksum) String() string { return fmt.Sprintf("%d rows, sum %016x", c.Rows, c.Sum) }

type checksumJSON struct {
	Rows int64  `json:"rows"`
	Sum  string `json:"sum"`
}

// MarshalJSON writes the sum as 16 hex digits, as String does: a JSON
// number past 2^53 is rounded by most readers (jq, JavaScript), and two
// different sums could compare equal there.
func (c Checksum) MarshalJSON() ([]byte, error) {
	return json.Marshal(checksumJSON{Rows: c.Rows, Sum: fmt.Sprintf("%016x", c.Sum)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Checksum) UnmarshalJSON(b []byte) error {
	var j checksumJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	sum, err := strconv.ParseUint(j.Sum, 16, 64)
	if err != nil {
		return fmt.Errorf("checksum sum %q: %w", j.Sum, err)
	}
	c.Rows, c.Sum = j.Rows, sum
	return nil
}

// Add folds every row of rec into the checksum, over the columns cols
// (indexes into rec; nil means all columns).
func (c *Checksum) Add(rec arrow.RecordBatch, cols []int) {
	AddEach(rec, cols, func(int) *Checksum { return c })
}

// AddEach folds each row i of rec into the checksum into(i) gives, over the
// columns cols (as Add): one pass that sums a batch's rows into several
// checksums.
func AddEach(rec arrow.RecordBatch, cols []int, into func(row int) *Checksum) {
	if cols == nil {
		cols = make([]int, rec.NumCols())
		for i := range cols {
			cols[i] = i
		}
	}
	logical := make([]string, len(cols))
	for j, col := range cols {
		f := rec.Schema().Field(col)
		logical[j] = Logical(f)
		if f.Type.ID() == arrow.DECIMAL128 {
			logical[j] = LogicalNumeric // ValueAt gives decimals as text
		}
	}
	var buf []byte
	h := xxhash.New()
	for i := 0; i < int(rec.NumRows()); i++ {
		h.Reset()
		for j, col := range cols {
			buf = appendNormalized(buf[:0], ValueAt(rec.Column(col), i), logical[j])
			var n [4]byte
			binary.LittleEndian.PutUint32(n[:], uint32(len(buf)))
			h.Write(n[:])
			h.Write(buf)
		}
		c := into(i)
		c.Sum += h.Sum64()
		c.Rows++
	}
}

func appendNormalized(b []byte, v any, logical string) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'n')
	case int64:
		return strconv.AppendInt(append(b, 'i'), x, 10)
	case uint64:
		return strconv.AppendUint(append(b, 'i'), x, 10)
	case float64:
		if math.IsNaN(x) {
			return append(b, "fNaN"...)
		}
		// As the shortest decimal that reads back as x, like a decimal:
		// a float and a decimal column agree when they hold the same
		// number (a CSV sink reads "12.50" back as a float, its source
		// column was numeric), and a decimal with more digits than a
		// float keeps does not.
		return append(append(b, 'd'), normalizeDecimal(strconv.FormatFloat(x, 'f', -1, 64))...)
	case bool:
		if x {
			return append(b, "b1"...)
		}
		return append(b, "b0"...)
	case string:
		switch logical {
		case LogicalJSON:
			if s, err := CanonicalJSON(x); err == nil {
				return append(append(b, 'j'), s...)
			}
		case LogicalNumeric:
			return append(append(b, 'd'), normalizeDecimal(x)...)
		case LogicalUUID:
			if u, err := ParseUUID(x); err == nil {
				return append(append(b, 'u'), u[:]...)
			}
		}
		return append(append(b, 's'), x...)
	case []byte:
		return append(append(b, 'x'), x...)
	case UUID:
		return append(append(b, 'u'), x[:]...)
	case time.Time:
		return strconv.AppendInt(append(b, 't'), x.UnixMicro(), 10)
	case time.Duration:
		return strconv.AppendInt(append(b, 'c'), x.Microseconds(), 10)
	}
	panic(fmt.Sprintf("connectors: checksum of %T", v))
}

// normalizeDecimal drops trailing fractional zeros and a trailing point, and
// writes negative zero as zero, so "1.50", "1.5" and "01.5" agree.
func normalizeDecimal(s string) string {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+"), "0")
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "" || strings.HasPrefix(s, ".") {
		s = "0" + s
	}
	if neg && s != "0" {
		s = "-" + s
	}
	return s
}
