package postgres

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/datashift/datashift/connectors"
)

// COPY takes no parameters, so range bounds are written into the statement
// as literals. Every literal is an escaped string constant cast to the key
// column's type, CAST(E'…' AS type): one encoding for every value type, with
// no dependence on standard_conforming_strings, and still a constant the
// planner folds so an index can serve the predicate.

// quoteLiteral renders s as an E” string constant.
func quoteLiteral(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("value %q holds a NUL byte, which PostgreSQL text cannot", s)
	}
	var b strings.Builder
	b.Grow(len(s) + 3)
	b.WriteString("E'")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}

// literal renders one key value as a constant of column c's type.
func literal(v any, c *column) (string, error) {
	var text string
	switch x := v.(type) {
	case nil:
		return "", fmt.Errorf("key column %q: a range bound cannot be NULL", c.name)
	case int64:
		text = strconv.FormatInt(x, 10)
	case uint64:
		text = strconv.FormatUint(x, 10)
	case float64:
		switch {
		case math.IsNaN(x):
			text = "NaN"
		case math.IsInf(x, 1):
			text = "Infinity"
		case math.IsInf(x, -1):
			text = "-Infinity"
		default:
			text = strconv.FormatFloat(x, 'g', -1, 64)
		}
	case bool:
		text = strconv.FormatBool(x)
	case string:
		text = x
	case []byte:
		if c.typeOID == oidBytea {
			text = `\x` + hex.EncodeToString(x)
		} else {
			text = string(x)
		}
	case connectors.UUID:
		text = x.String()
	case time.Time:
		text = timeLiteral(x, c.typeOID)
	case time.Duration:
		text = timeOfDay(x)
	default:
		return "", fmt.Errorf("key column %q: cannot use a %T as a bound", c.name, v)
	}
	q, err := quoteLiteral(text)
	if err != nil {
		return "", fmt.Errorf("key column %q: %w", c.name, err)
	}
	return "CAST(" + q + " AS " + c.literalType() + ")", nil
}

// timeLiteral writes t in the input syntax of the column's type. Times travel
// in UTC, and a timestamp without zone is its UTC wall clock (TYPES.md).
func timeLiteral(t time.Time, typeOID uint32) string {
	t = t.UTC()
	y, bc := t.Year(), ""
	if y <= 0 { // astronomical year 0 is 1 BC
		y, bc = 1-y, " BC"
	}
	date := fmt.Sprintf("%04d-%02d-%02d", y, int(t.Month()), t.Day())
	clock := fmt.Sprintf("%02d:%02d:%02d.%06d", t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1000)
	switch typeOID {
	case oidDate:
		return date + bc
	case oidTimestamp:
		return date + " " + clock + bc
	case oidTime:
		return clock
	default: // timestamptz, and text keys compared with a time bound
		return date + " " + clock + "+00" + bc
	}
}

func timeOfDay(d time.Duration) string {
	us := d.Microseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%06d", us/3600e6, us/60e6%60, us/1e6%60, us%1e6)
}

// rowCompare renders (k1, k2) op (v1, v2), or k op v for one column.
func rowCompare(keys []column, op string, bound connectors.Key) (string, error) {
	if len(bound) != len(keys) {
		return "", fmt.Errorf("range bound %s has %d values for %d key columns", bound, len(bound), len(keys))
	}
	l := make([]string, len(keys))
	r := make([]string, len(keys))
	for i := range keys {
		lit, err := literal(bound[i], &keys[i])
		if err != nil {
			return "", err
		}
		l[i], r[i] = keys[i].orderExpr(), lit
	}
	if len(keys) == 1 {
		return l[0] + " " + op + " " + r[0], nil
	}
	return "(" + strings.Join(l, ", ") + ") " + op + " (" + strings.Join(r, ", ") + ")", nil
}

// rangeConds returns the conditions selecting the rows of r (TYPES.md "Key
// order"): Lo inclusive, Hi exclusive, After exclusive in place of Lo, Nulls
// for keys with a NULL in any column, and with a key but no bounds only the
// rows whose key has no NULL. With no key, Range{} is every row. Pages
// selects heap pages by ctid (a TID range scan on PostgreSQL 14+).
//
// The ranges read by position (Pages, Nulls, any range without a key) have
// no key order to resume in: their After is a read position, the ctid of
// the last row read (see positionTID), and selects the rows past it.
func rangeConds(keys []column, r connectors.Range) ([]string, error) {
	if r.Pages != nil {
		if r.Lo != nil || r.Hi != nil || r.Nulls {
			return nil, fmt.Errorf("range %s mixes pages with key bounds", r)
		}
		conds := []string{fmt.Sprintf("ctid >= '(%d,0)'::tid", r.Pages.Lo)}
		if r.Pages.Hi > 0 {
			conds = append(conds, fmt.Sprintf("ctid < '(%d,0)'::tid", r.Pages.Hi))
		}
		return afterTID(conds, r)
	}
	if len(keys) == 0 {
		if r.Lo != nil || r.Hi != nil || r.Nulls {
			return nil, fmt.Errorf("range %s needs key columns, and none are configured", r)
		}
		return afterTID(nil, r)
	}
	if r.Nulls {
		if r.Lo != nil || r.Hi != nil {
			return nil, fmt.Errorf("range %s mixes NULL keys with key bounds", r)
		}
		var ors []string
		for i := range keys {
			if !keys[i].notNull {
				ors = append(ors, quoteIdent(keys[i].name)+" IS NULL")
			}
		}
		if len(ors) == 0 {
			return []string{"false"}, nil
		}
		return afterTID([]string{"(" + strings.Join(ors, " OR ") + ")"}, r)
	}
	var conds []string
	// A row comparison is decided by its first unequal column, so (1, NULL)
	// < (2, 0) holds: NULLs must be excluded explicitly.
	for i := range keys {
		if !keys[i].notNull {
			conds = append(conds, quoteIdent(keys[i].name)+" IS NOT NULL")
		}
	}
	lo, op := r.Lo, ">="
	if r.After != nil {
		lo, op = r.After, ">"
	}
	if lo != nil {
		c, err := rowCompare(keys, op, lo)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	if r.Hi != nil {
		c, err := rowCompare(keys, "<", r.Hi)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// whereClause joins conditions and the user filter into a WHERE clause ("" if
// there is none).
func whereClause(conds []string, userWhere string) string {
	if userWhere != "" {
		conds = append(conds, "("+userWhere+")")
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// orderBy renders the ORDER BY clause of the key order.
func orderBy(keys []column) string {
	if len(keys) == 0 {
		return ""
	}
	parts := make([]string, len(keys))
	for i := range keys {
		parts[i] = keys[i].orderExpr()
	}
	return " ORDER BY " + strings.Join(parts, ", ")
}

// afterTID adds the condition ctid > After of a range read by position.
func afterTID(conds []string, r connectors.Range) ([]string, error) {
	if r.After == nil {
		return conds, nil
	}
	tid, err := positionTID(r.After) // the caller names the range
	if err != nil {
		return nil, err
	}
	return append(conds, "ctid > "+tid.literal()), nil
}

// tid is a heap tuple's physical location, ordered as PostgreSQL orders
// ctids: by block, then by line pointer.
type tid struct {
	block  uint32
	offset uint16
}

func (t tid) less(u tid) bool {
	return t.block < u.block || t.block == u.block && t.offset < u.offset
}

// position is the read position a positioned read gives for a row.
func (t tid) position() connectors.Key {
	return connectors.Key{int64(t.block), int64(t.offset)}
}

func (t tid) String() string { return fmt.Sprintf("(%d,%d)", t.block, t.offset) }

func (t tid) literal() string { return "'" + t.String() + "'::tid" }

// positionTID reads a position a positioned read gave: the ctid of a row as
// Key{int64(block), int64(offset)}.
func positionTID(k connectors.Key) (tid, error) {
	if len(k) == 2 {
		b, ok1 := k[0].(int64)
		o, ok2 := k[1].(int64)
		if ok1 && ok2 && b >= 0 && b <= math.MaxUint32 && o >= 0 && o <= math.MaxUint16 {
			return tid{block: uint32(b), offset: uint16(o)}, nil
		}
	}
	return tid{}, fmt.Errorf("position %s is not a row position (block, offset)", k)
}
