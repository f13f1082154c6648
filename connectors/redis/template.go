package redis

import (
	"fmt"
	"strings"
)

// template is a key template: fixed text and {column} references.
type template struct {
	text   string
	parts  []segment
	prefix string // the fixed text before the first column
}

type segment struct {
	lit    string
	column string // set for a column reference
}

func parseTemplate(s string) (template, error) {
	t := template{text: s}
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if close := strings.IndexByte(rest, '}'); close >= 0 && (open < 0 || close < open) {
			return t, fmt.Errorf("%q: '}' without '{'", s)
		}
		if open < 0 {
			t.parts = append(t.parts, segment{lit: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, segment{lit: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return t, fmt.Errorf("%q: '{' without '}'", s)
		}
		col := rest[open+1 : open+end]
		if col == "" || strings.ContainsAny(col, "{") {
			return t, fmt.Errorf("%q: empty or nested column reference", s)
		}
		t.parts = append(t.parts, segment{column: col})
		rest = rest[open+end+1:]
	}
	if len(t.columns()) == 0 {
		return t, fmt.Errorf("%q names no column: every row would get the same key", s)
	}
	if p := t.parts[0]; p.column == "" {
		t.prefix = p.lit
	}
	return t, nil
}

// columns lists the referenced columns in order (repeats kept).
func (t template) columns() []string {
	var out []string
	for _, p := range t.parts {
		if p.column != "" {
			out = append(out, p.column)
		}
	}
	return out
}

// pattern is the SCAN MATCH glob of the keys the template makes: its fixed
// text quoted (globEscape), each column a '*'.
func (t template) pattern() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.column != "" {
			b.WriteByte('*')
			continue
		}
		b.WriteString(globEscape(p.lit))
	}
	return b.String()
}
