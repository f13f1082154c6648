package postgres

import (
	"context"
	"fmt"

	"github.com/datashift/datashift/connectors"
)

var _ connectors.CursorSource = (*Source)(nil)

// cursorConds are the conditions of the incremental window
// From <= cursor <= UpTo, compared in key order (text by bytes) like the
// high-water mark they come from.
func cursorConds(all []column, what string, w *connectors.CursorWindow) ([]string, error) {
	cols, err := findColumns(all, []string{w.Column}, "cursor", what)
	if err != nil {
		return nil, err
	}
	var conds []string
	for _, b := range []struct {
		v  any
		op string
	}{{w.From, ">="}, {w.UpTo, "<="}} {
		if b.v == nil {
			continue
		}
		c, err := rowCompare(cols, b.op, connectors.Key{b.v})
		if err != nil {
			return nil, fmt.Errorf("cursor column %q: %w", w.Column, err)
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// MaxCursor returns the greatest value of the column among the rows the
// source reads (its Where applies, its cursor window does not), or nil.
func (s *Source) MaxCursor(ctx context.Context, name string) (any, error) {
	cols, err := findColumns(s.all, []string{name}, "cursor", s.what)
	if err != nil {
		return nil, err
	}
	view := *s
	view.keys = cols
	conds, err := rangeConds(view.keys, connectors.Range{})
	if err != nil {
		return nil, err
	}
	q := "SELECT " + view.keySelectList() + " FROM " + s.from + whereClause(conds, s.userWhere()) +
		" ORDER BY " + cols[0].orderExpr() + " DESC LIMIT 1"
	conn, err := s.conn.get(ctx)
	if err != nil {
		return nil, s.conn.redact(err)
	}
	var max connectors.Key
	if err := view.keyReader(ctx, conn, q, func(k connectors.Key) { max = k }); err != nil {
		s.conn.discard(conn)
		return nil, s.conn.redact(classify(fmt.Errorf("postgres source %s: max of cursor %q: %w", s.what, name, err)))
	}
	s.conn.put(conn)
	if max == nil {
		return nil, nil
	}
	return max[0], nil
}
