package connectors

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Key is one row's key: one value per key column, in key-column order.
//
// Values are nil (NULL), int64, uint64, float64, string, []byte, bool,
// time.Time, time.Duration (a time of day) or UUID. Timestamps without a time zone travel as their wall clock
// in UTC; dates as midnight UTC.
//
// Text keys are ordered by their UTF-8 bytes in every store (PostgreSQL
// COLLATE "C", MariaDB binary comparison, SQLite BINARY): a range computed by
// one store must mean the same rows wherever it is compared again (a plan, a
// resume position, the engine deciding where to commit), and byte
// order is the one order every store agrees on.
type Key []any

// UUID is a 16-byte UUID key value; it orders by its bytes, like its text form.
type UUID [16]byte

func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// ParseUUID parses the canonical 36-character form (or 32 hex digits).
func ParseUUID(s string) (UUID, error) {
	var u UUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return u, fmt.Errorf("invalid UUID %q", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("invalid UUID %q", s)
	}
	return u, nil
}

// Range is a half-open key range [Lo, Hi) of a source.
//
// A nil Lo is unbounded below and a nil Hi unbounded above. Rows whose key is
// NULL (any column NULL, for composite keys) are in no [Lo, Hi) range: they
// belong to the one range with Nulls set. Together the ranges of a plan cover
// every row exactly once.
type Range struct {
	Lo Key `json:"lo,omitempty"`
	Hi Key `json:"hi,omitempty"`
	// After, when set, replaces Lo with an exclusive bound: the rows of the
	// range past a checkpoint. For a keyless range (Pages, Nulls, or a
	// source without a key) it is a position a PositionReader gave.
	After Key  `json:"after,omitempty"`
	Nulls bool `json:"nulls,omitempty"`
	// Pages, when set, selects rows by physical location instead of key
	// (PostgreSQL ctid pages [Lo, Hi)) for tables with no usable key.
	Pages *PageRange `json:"pages,omitempty"`
}

// PageRange is a half-open range of heap pages; Hi 0 means unbounded.
type PageRange struct {
	Lo int64 `json:"lo"`
	Hi int64 `json:"hi"`
}

// Resumed returns the part of r that follows after: a key, or for a keyless
// range a read position.
func (r Range) Resumed(after Key) Range {
	if after == nil {
		return r
	}
	r.After = after
	return r
}

// Contains reports whether r holds the row with key k, with the semantics
// sources give ranges (TYPES.md): a key with a NULL in any column
// is only in the Nulls range; other keys are in [Lo, Hi), or (After, Hi) when
// the range is resumed. A page range holds no key: rows there are found by
// location, not by key. Keys must have the plan's columns and types.
func (r Range) Contains(k Key) bool {
	if r.Pages != nil {
		return false
	}
	for _, v := range k {
		if v == nil {
			return r.Nulls
		}
	}
	if r.Nulls {
		return false
	}
	switch {
	case r.After != nil:
		if CompareKeys(k, r.After) <= 0 {
			return false
		}
	case r.Lo != nil:
		if CompareKeys(k, r.Lo) < 0 {
			return false
		}
	}
	return r.Hi == nil || CompareKeys(k, r.Hi) < 0
}

func (r Range) String() string {
	after := ""
	if r.After != nil {
		after = " after " + r.After.String()
	}
	switch {
	case r.Nulls:
		return "[NULL keys]" + after
	case r.Pages != nil:
		hi := "∞"
		if r.Pages.Hi > 0 {
			hi = strconv.FormatInt(r.Pages.Hi, 10)
		}
		return fmt.Sprintf("pages [%d, %s)", r.Pages.Lo, hi) + after
	}
	lo, open := "[-∞", "["
	if r.Lo != nil {
		lo = open + r.Lo.String()
	}
	if r.After != nil {
		lo = "(" + r.After.String()
	}
	hi := "+∞)"
	if r.Hi != nil {
		hi = r.Hi.String() + ")"
	}
	return lo + ", " + hi
}

func (k Key) String() string {
	parts := make([]string, len(k))
	for i, v := range k {
		parts[i] = formatKeyValue(v)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func formatKeyValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return strconv.Quote(x)
	case []byte:
		return `\x` + hex.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case UUID:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// CompareKeys orders two keys column by column in the order every store
// agrees on (see Key). A NULL sorts first. It panics on keys of different
// lengths or mismatched types: both are programming errors.
func CompareKeys(a, b Key) int {
	if len(a) != len(b) {
		panic(fmt.Sprintf("connectors: comparing keys of %d and %d columns", len(a), len(b)))
	}
	for i := range a {
		if c := CompareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// CompareValues orders two key values of the same type; NULL sorts first.
func CompareValues(a, b any) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return -1
		default:
			return 1
		}
	}
	switch x := a.(type) {
	case int64:
		return cmp3(x, b.(int64))
	case uint64:
		return cmp3(x, b.(uint64))
	case float64:
		return cmp3(x, b.(float64))
	case string:
		return strings.Compare(x, b.(string))
	case []byte:
		return bytes.Compare(x, b.([]byte))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		default:
			return 1
		}
	case time.Time:
		return x.Compare(b.(time.Time))
	case time.Duration:
		return cmp3(int64(x), int64(b.(time.Duration)))
	case UUID:
		y := b.(UUID)
		return bytes.Compare(x[:], y[:])
	}
	panic(fmt.Sprintf("connectors: key value of type %T", a))
}

func cmp3[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// keyValueJSON is the typed form a key value takes in checkpoints and plans,
// so that an int64 comes back as an int64 and not a float.
type keyValueJSON struct {
	T string `json:"t"`
	V string `json:"v,omitempty"`
}

// MarshalJSON encodes the key with the type of each value.
func (k Key) MarshalJSON() ([]byte, error) {
	if k == nil {
		return []byte("null"), nil
	}
	out := make([]keyValueJSON, len(k))
	for i, v := range k {
		switch x := v.(type) {
		case nil:
			out[i] = keyValueJSON{T: "null"}
		case int64:
			out[i] = keyValueJSON{T: "int", V: strconv.FormatInt(x, 10)}
		case uint64:
			out[i] = keyValueJSON{T: "uint", V: strconv.FormatUint(x, 10)}
		case float64:
			out[i] = keyValueJSON{T: "float", V: strconv.FormatFloat(x, 'g', -1, 64)}
		case string:
			if utf8.ValidString(x) {
				out[i] = keyValueJSON{T: "text", V: x}
			} else {
				// JSON would replace the invalid bytes; keep them exact.
				out[i] = keyValueJSON{T: "textbytes", V: base64.StdEncoding.EncodeToString([]byte(x))}
			}
		case []byte:
			out[i] = keyValueJSON{T: "bytes", V: base64.StdEncoding.EncodeToString(x)}
		case bool:
			out[i] = keyValueJSON{T: "bool", V: strconv.FormatBool(x)}
		case time.Time:
			out[i] = keyValueJSON{T: "time", V: x.UTC().Format(time.RFC3339Nano)}
		case time.Duration:
			out[i] = keyValueJSON{T: "timeofday", V: strconv.FormatInt(int64(x), 10)}
		case UUID:
			out[i] = keyValueJSON{T: "uuid", V: x.String()}
		default:
			return nil, fmt.Errorf("key value of type %T cannot be encoded", v)
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (k *Key) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*k = nil
		return nil
	}
	var in []keyValueJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	out := make(Key, len(in))
	for i, e := range in {
		var err error
		switch e.T {
		case "null":
		case "int":
			out[i], err = strconv.ParseInt(e.V, 10, 64)
		case "uint":
			out[i], err = strconv.ParseUint(e.V, 10, 64)
		case "float":
			out[i], err = strconv.ParseFloat(e.V, 64)
		case "text":
			out[i] = e.V
		case "textbytes":
			var raw []byte
			raw, err = base64.StdEncoding.DecodeString(e.V)
			out[i] = string(raw)
		case "bytes":
			out[i], err = base64.StdEncoding.DecodeString(e.V)
		case "bool":
			out[i], err = strconv.ParseBool(e.V)
		case "time":
			out[i], err = time.Parse(time.RFC3339Nano, e.V)
		case "timeofday":
			var ns int64
			ns, err = strconv.ParseInt(e.V, 10, 64)
			out[i] = time.Duration(ns)
		case "uuid":
			out[i], err = ParseUUID(e.V)
		default:
			err = fmt.Errorf("unknown key value type %q", e.T)
		}
		if err != nil {
			return fmt.Errorf("key column %d: %w", i, err)
		}
	}
	*k = out
	return nil
}
