package sqlite

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/datashift/datashift/connectors"
)

// keyExpr is a key column as it appears in predicates and ORDER BY: text is
// compared by its bytes whatever collation the column was declared with.
func keyExpr(c *column) string {
	if c.kind.textual() {
		return quoteIdent(c.name) + " COLLATE BINARY"
	}
	return quoteIdent(c.name)
}

func keyList(keys []*column) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = keyExpr(k)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// orderBy is the ORDER BY list of a read in key order.
func orderBy(keys []*column) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = keyExpr(k)
	}
	return strings.Join(parts, ", ")
}

// rangeWhere returns the conjuncts (and their parameters) that select the
// rows of r, per TYPES.md: [Lo, Hi), After replacing Lo, Nulls for the rows
// with a NULL in any key column, and no bound meaning every non-NULL key.
// The rows of the Nulls range have no key order to resume in: a source
// with a rowid resumes them by rowid (source.where); here a resumed Nulls
// range is refused rather than read whole again.
func rangeWhere(keys []*column, r connectors.Range) ([]string, []any, error) {
	if r.Pages != nil {
		return nil, nil, errors.New("sqlite reads by key, not by pages")
	}
	if len(keys) == 0 {
		if r.Lo != nil || r.Hi != nil || r.After != nil || r.Nulls {
			return nil, nil, fmt.Errorf("range %s needs a key, and the source has none", r)
		}
		return nil, nil, nil
	}
	var conds []string
	var args []any
	if r.Nulls {
		if r.After != nil {
			return nil, nil, fmt.Errorf("range %s resumed after %s: the rows with a NULL key have no order to resume in without a rowid", r, r.After)
		}
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = quoteIdent(k.name) + " IS NULL"
		}
		return []string{"(" + strings.Join(parts, " OR ") + ")"}, nil, nil
	}
	for _, k := range keys {
		conds = append(conds, quoteIdent(k.name)+" IS NOT NULL")
	}
	bound := func(op string, key connectors.Key) error {
		if len(key) != len(keys) {
			return fmt.Errorf("key %s has %d values for %d key columns", key, len(key), len(keys))
		}
		ph := make([]string, len(keys))
		for i, k := range keys {
			v, err := keyArg(k, key[i])
			if err != nil {
				return err
			}
			args = append(args, v)
			ph[i] = "?"
		}
		list := ph[0]
		if len(ph) > 1 {
			list = "(" + strings.Join(ph, ", ") + ")"
		}
		conds = append(conds, keyList(keys)+" "+op+" "+list)
		return nil
	}
	switch {
	case r.After != nil:
		if err := bound(">", r.After); err != nil {
			return nil, nil, err
		}
	case r.Lo != nil:
		if err := bound(">=", r.Lo); err != nil {
			return nil, nil, err
		}
	}
	if r.Hi != nil {
		if err := bound("<", r.Hi); err != nil {
			return nil, nil, err
		}
	}
	return conds, args, nil
}

// keyArg converts a key value (see connectors.Key) to the SQLite value it is
// compared with in column c: the same representation the column stores, so
// that SQLite's comparison is the key order.
func keyArg(c *column, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, fmt.Errorf("key column %q: a range bound cannot be NULL", c.name)
	case int64:
		return x, nil
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), nil
		}
		// Greater than every integer SQLite can hold; SQLite compares
		// integers with reals exactly.
		return float64(x), nil
	case float64:
		return x, nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case string:
		return x, nil
	case []byte:
		return x, nil
	case connectors.UUID:
		if c.kind == kindBlob {
			return x[:], nil
		}
		return x.String(), nil
	case time.Duration:
		return string(appendClock(nil, x.Microseconds())), nil
	case time.Time:
		us := x.UnixMicro()
		if x.Nanosecond()%1000 != 0 {
			return nil, fmt.Errorf("key column %q: time %s is finer than microseconds", c.name, x)
		}
		if c.unixTime {
			if us%microsPerSecond == 0 {
				return us / microsPerSecond, nil
			}
			return float64(us) / float64(microsPerSecond), nil
		}
		var b []byte
		var ok bool
		if c.kind == kindDate {
			days, rest := floorDiv(us, microsPerDay)
			if rest != 0 {
				return nil, fmt.Errorf("key column %q: %s is not a date", c.name, x)
			}
			b, ok = appendDate(nil, days)
		} else {
			b, ok = appendTimestamp(nil, us, c.kind == kindTimestampTZ)
			if ok && !c.ours {
				b = foreignLayout(b, c)
			}
		}
		if !ok {
			return nil, fmt.Errorf("key column %q: time %s is outside years 0000-9999", c.name, x)
		}
		return string(b), nil
	}
	return nil, fmt.Errorf("key column %q: key value of type %T", c.name, v)
}

// foreignLayout rewrites a TIMESTAMP_TEXT/TIMESTAMPTZ_TEXT text in the
// layout sniffed from a DATETIME key column of a table someone else made
// ('T' or ' ' between date and time, no trailing zero fraction), so that
// a bound equal to a stored value compares equal to it.
func foreignLayout(b []byte, c *column) []byte {
	if c.timeSep != 0 {
		b[10] = c.timeSep
	}
	z := len(b) > 0 && b[len(b)-1] == 'Z'
	if z {
		b = b[:len(b)-1]
	}
	b = []byte(strings.TrimRight(string(b), "0"))
	b = []byte(strings.TrimSuffix(string(b), "."))
	if z {
		b = append(b, 'Z')
	}
	return b
}
