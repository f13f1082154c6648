package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/datashift/datashift/connectors"
)

var _ connectors.CursorSource = (*source)(nil)

// cursorCond is the incremental window From <= cursor <= UpTo, compared the
// way keys are so a text cursor orders by bytes like the high-water mark.
func cursorCond(c *column, prefix string, w *connectors.CursorWindow) (string, []any, error) {
	var conds []string
	var args []any
	for _, b := range []struct {
		v  any
		op string
	}{{w.From, ">="}, {w.UpTo, "<="}} {
		if b.v == nil {
			continue
		}
		a, err := c.keyArg(b.v)
		if err != nil {
			return "", nil, fmt.Errorf("cursor column %q: %w", c.name, err)
		}
		conds = append(conds, c.keyExpr(prefix)+" "+b.op+" "+c.keyParam())
		args = append(args, a)
	}
	return strings.Join(conds, " AND "), args, nil
}

// MaxCursor returns the greatest value of column among the rows the source
// reads (its Where applies, its cursor window does not), or nil.
func (s *source) MaxCursor(ctx context.Context, name string) (any, error) {
	c := findColumn(s.all, name)
	if c == nil {
		return nil, fmt.Errorf("cursor column %q not found in %s (columns: %s)", name, s.name, strings.Join(columnNames(s.all), ", "))
	}
	if err := c.usableAsKey(); err != nil {
		return nil, fmt.Errorf("cursor column %q: %w", name, err)
	}
	view := *s
	view.keys, view.cursor, view.cursorArgs = []*column{c}, "", nil
	k, err := view.edgeKey(ctx, true)
	if err != nil || k == nil {
		return nil, err
	}
	return k[0], nil
}
