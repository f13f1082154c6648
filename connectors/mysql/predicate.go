package mysql

import (
	"errors"
	"fmt"
	"strings"

	"github.com/datashift/datashift/connectors"
)

// rangeWhere returns the condition selecting the rows of r (TYPES.md), with
// its arguments, for key columns keys. prefix qualifies column names ("q."
// for a query source). An empty condition means every row.
//
// Bounds compare keyExpr, so text keys compare by bytes. A composite bound is
// spelled out as (a > x OR (a = x AND b >= y)) with a leading a >= x: MariaDB
// does not turn row-value comparisons into index ranges, but it does this.
func rangeWhere(keys []*column, prefix string, r connectors.Range) (string, []any, error) {
	if r.Pages != nil {
		return "", nil, errors.New("mysql: ranges by physical pages are not supported")
	}
	if len(keys) == 0 {
		if r.Lo != nil || r.Hi != nil || r.After != nil || r.Nulls {
			return "", nil, fmt.Errorf("range %s needs key columns, and none are configured", r)
		}
		return "", nil, nil
	}
	if r.Nulls {
		// Rows with a NULL key are equal in key order: a NULL range is read
		// whole (it commits once, at its end), so After does not apply.
		parts := make([]string, len(keys))
		for i, c := range keys {
			parts[i] = prefix + c.quoted() + " IS NULL"
		}
		return "(" + strings.Join(parts, " OR ") + ")", nil, nil
	}
	var conds []string
	var args []any
	for _, c := range keys {
		conds = append(conds, prefix+c.quoted()+" IS NOT NULL")
	}
	add := func(k connectors.Key, op string) error {
		if len(k) != len(keys) {
			return fmt.Errorf("range bound %s has %d values for %d key columns", k, len(k), len(keys))
		}
		vals := make([]any, len(k))
		for i, v := range k {
			a, err := keys[i].keyArg(v)
			if err != nil {
				return err
			}
			vals[i] = a
		}
		cond, a := boundCond(keys, prefix, vals, op)
		conds = append(conds, cond)
		args = append(args, a...)
		return nil
	}
	switch {
	case r.After != nil:
		if err := add(r.After, ">"); err != nil {
			return "", nil, err
		}
	case r.Lo != nil:
		if err := add(r.Lo, ">="); err != nil {
			return "", nil, err
		}
	}
	if r.Hi != nil {
		if err := add(r.Hi, "<"); err != nil {
			return "", nil, err
		}
	}
	return strings.Join(conds, " AND "), args, nil
}

// boundCond spells (k1, …, kn) op (v1, …, vn) for op one of >, >=, <.
func boundCond(keys []*column, prefix string, vals []any, op string) (string, []any) {
	n := len(keys)
	expr := func(i int) string { return keys[i].keyExpr(prefix) }
	if n == 1 {
		return expr(0) + " " + op + " " + keys[0].keyParam(), []any{vals[0]}
	}
	strict := ">"
	prefixOp := ">="
	if op == "<" {
		strict, prefixOp = "<", "<="
	}
	var args []any
	var b strings.Builder
	// Leading single-column bound: lets the optimizer use a range on k1.
	b.WriteString(expr(0) + " " + prefixOp + " " + keys[0].keyParam() + " AND ")
	args = append(args, vals[0])
	for i := 0; i < n; i++ {
		if i == n-1 {
			b.WriteString(expr(i) + " " + op + " " + keys[i].keyParam())
			args = append(args, vals[i])
			break
		}
		b.WriteString("(" + expr(i) + " " + strict + " " + keys[i].keyParam() + " OR (" +
			expr(i) + " = " + keys[i].keyParam() + " AND ")
		args = append(args, vals[i], vals[i])
	}
	b.WriteString(strings.Repeat("))", n-1))
	return "(" + b.String() + ")", args
}

// orderBy is the ORDER BY list giving key order.
func orderBy(keys []*column, prefix string, desc bool) string {
	parts := make([]string, len(keys))
	for i, c := range keys {
		parts[i] = c.keyExpr(prefix)
		if desc {
			parts[i] += " DESC"
		}
	}
	return strings.Join(parts, ", ")
}

// and joins non-empty conditions, each in parentheses.
func and(conds ...string) string {
	var out []string
	for _, c := range conds {
		if c != "" {
			out = append(out, "("+c+")")
		}
	}
	return strings.Join(out, " AND ")
}
