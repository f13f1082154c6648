package redis

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/textform"
)

// writer queues HSET (and HDEL, EXPIRE) commands in a pipeline and sends
// them a pipeline-full at a time; Commit sends the rest and checks every
// reply.
type writer struct {
	s        *Sink
	schema   *arrow.Schema
	pipe     redis.Pipeliner
	tmplCols []int // column of each template reference
	keyCols  []int // the source key, to name a row in errors
	text     []byte
	fmts     []textform.Formatter
	nulls    []string
}

func (w *writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if int(rec.NumCols()) != w.schema.NumFields() {
		return fmt.Errorf("%s sink: batch has %d columns, want %d", typeName, rec.NumCols(), w.schema.NumFields())
	}
	w.fmts = w.fmts[:0]
	for i, f := range w.schema.Fields() {
		fm, err := textform.NewFormatter(f, rec.Column(i), w.s.binary)
		if err != nil {
			return fmt.Errorf("%s sink: %w", typeName, err)
		}
		w.fmts = append(w.fmts, fm)
	}
	cols := rec.Columns()
	for r := 0; r < int(rec.NumRows()); r++ {
		key, err := w.key(rec, r)
		if err != nil {
			return err
		}
		args := make([]any, 0, 2*len(cols))
		w.nulls = w.nulls[:0]
		for c, fm := range w.fmts {
			name := w.schema.Field(c).Name
			if cols[c].IsNull(r) {
				w.nulls = append(w.nulls, name)
				continue
			}
			w.text = fm(w.text[:0], r)
			// A string copy: the pipeline encodes arguments when it is sent.
			args = append(args, name, string(w.text))
		}
		// args is never empty: the template's columns are not NULL.
		w.pipe.HSet(ctx, key, args...)
		if len(w.nulls) > 0 {
			w.pipe.HDel(ctx, key, append([]string(nil), w.nulls...)...)
		}
		if w.s.ttl > 0 {
			w.pipe.Expire(ctx, key, w.s.ttl)
		}
		if w.pipe.Len() >= w.s.pipeline {
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// key renders the template for row r; a NULL in a template column is a
// ValueError: the row has no key to be stored under.
func (w *writer) key(rec arrow.RecordBatch, r int) (string, error) {
	w.text = w.text[:0]
	ci := 0
	for _, p := range w.s.tmpl.parts {
		if p.column == "" {
			w.text = append(w.text, p.lit...)
			continue
		}
		c := w.tmplCols[ci]
		ci++
		if rec.Column(c).IsNull(r) {
			var k connectors.Key
			if len(w.keyCols) > 0 {
				k = connectors.KeyOf(rec, w.keyCols, r)
			}
			return "", &connectors.ValueError{Column: p.column, Key: k, Value: "NULL",
				Reason: fmt.Sprintf("a column of the key template %q cannot be NULL", w.s.tmpl.text)}
		}
		w.text = w.fmts[c](w.text, r)
	}
	return string(w.text), nil
}

// flush sends the queued commands in one round trip and checks each reply,
// naming the key of the first that failed.
func (w *writer) flush(ctx context.Context) error {
	cmds, err := w.pipe.Exec(ctx)
	for _, cmd := range cmds {
		if cerr := cmd.Err(); cerr != nil {
			key := ""
			if args := cmd.Args(); len(args) > 1 {
				key = fmt.Sprint(args[1])
			}
			return w.s.fail(fmt.Sprintf("%s %s", cmd.Name(), key), cerr)
		}
	}
	if err != nil {
		return w.s.fail("pipeline", err)
	}
	return nil
}

// Commit sends what is queued; Redis has no transaction to commit, so
// durability is the server's (AOF/RDB), and a resumed partition relies on
// the writes being idempotent (see OpenWriter).
func (w *writer) Commit(ctx context.Context) ([]byte, error) {
	if err := w.flush(ctx); err != nil {
		return nil, err
	}
	return nil, nil
}

// Close drops queued commands. Pipelines already sent stay written: a
// resumed partition writes the same rows again, to the same result.
func (w *writer) Close() error {
	w.pipe.Discard()
	return nil
}
