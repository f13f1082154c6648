package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/textform"
)

// writer keeps the batches given to Write, retained, and sends them at
// Commit: their rows' HSET (and HDEL, EXPIRE) and the commit record's SET
// in one MULTI/EXEC. Write only checks that every row has a key it may
// store, so that a bad row is refused with its batch, before anything of
// the batch is kept.
type writer struct {
	s        *Sink
	spec     connectors.WriterSpec
	key      string // the partition's record key
	tmplCols []int  // column of each template reference
	keyCols  []int  // the source key, to name a row in errors
	pending  []arrow.RecordBatch
	text     []byte
	closed   bool
}

func (w *writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if w.closed {
		return fmt.Errorf("%s sink: partition %s: write after close", typeName, w.spec.Partition)
	}
	if int(rec.NumCols()) != w.spec.Schema.NumFields() {
		return fmt.Errorf("%s sink: batch has %d columns, want %d", typeName, rec.NumCols(), w.spec.Schema.NumFields())
	}
	if err := w.checkKeys(rec); err != nil {
		return err
	}
	rec.Retain()
	w.pending = append(w.pending, rec)
	return nil
}

// checkKeys renders the keys of rec when one of them may be refused: a
// template column holds a NULL, or the template can reach the commit log.
func (w *writer) checkKeys(rec arrow.RecordBatch) error {
	nulls := false
	for _, c := range w.tmplCols {
		nulls = nulls || rec.Column(c).NullN() > 0
	}
	if !nulls && !w.s.mayHitLog {
		return nil
	}
	fmts, err := w.formatters(rec)
	if err != nil {
		return err
	}
	for r := 0; r < int(rec.NumRows()); r++ {
		if _, err := w.appendKey(rec, fmts, r); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) formatters(rec arrow.RecordBatch) ([]textform.Formatter, error) {
	fmts := make([]textform.Formatter, rec.NumCols())
	for i, f := range w.spec.Schema.Fields() {
		fm, err := textform.NewFormatter(f, rec.Column(i), w.s.binary)
		if err != nil {
			return nil, fmt.Errorf("%s sink: %w", typeName, err)
		}
		fmts[i] = fm
	}
	return fmts, nil
}

// appendKey renders the template for row r into w.text. A NULL in a
// template column, or a key among the commit records, is a ValueError: the
// row has no key it can be stored under.
func (w *writer) appendKey(rec arrow.RecordBatch, fmts []textform.Formatter, r int) ([]byte, error) {
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
			return nil, &connectors.ValueError{Column: p.column, Key: w.rowKey(rec, r), Value: "NULL",
				Reason: fmt.Sprintf("a column of the key template %q cannot be NULL", w.s.tmpl.text)}
		}
		w.text = fmts[c](w.text, r)
	}
	if w.s.mayHitLog && len(w.text) >= len(w.s.commitPrefix) && string(w.text[:len(w.s.commitPrefix)]) == w.s.commitPrefix {
		return nil, &connectors.ValueError{Column: w.s.tmpl.columns()[0], Key: w.rowKey(rec, r),
			Reason: fmt.Sprintf("the key template %q makes the key %q, among the commit records under commit_key %q", w.s.tmpl.text, w.text, w.s.commitKey)}
	}
	return w.text, nil
}

func (w *writer) rowKey(rec arrow.RecordBatch, r int) connectors.Key {
	if len(w.keyCols) == 0 {
		return nil
	}
	return connectors.KeyOf(rec, w.keyCols, r)
}

// Commit sends the rows written since the last commit and rec in one
// MULTI/EXEC, under WATCH of the partition's record key and of the rows' keys,
// once the stored record is seen to carry rec.Lease and every row key to be
// a hash or absent. An aborted EXEC is checked again from the start.
func (w *writer) Commit(ctx context.Context, rec connectors.CommitRecord) error {
	if w.closed {
		return fmt.Errorf("%s sink: partition %s: commit after close", typeName, w.spec.Partition)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rec, err := w.record(rec)
	if err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("%s sink: commit record of partition %s: %w", typeName, w.spec.Partition, err)
	}
	ops, keys, err := w.render()
	if err != nil {
		return err
	}
	err = w.s.optimistic(ctx, "commit of partition "+w.spec.Partition, keys, func(tx *redis.Tx) error {
		return w.exec(ctx, tx, rec.Lease, ops, keys[1:], data)
	})
	if err != nil {
		return err
	}
	for _, b := range w.pending {
		b.Release()
	}
	clear(w.pending)
	w.pending = w.pending[:0]
	return nil
}

// record checks that rec names the writer's partition and lease, filling
// in what it leaves empty.
func (w *writer) record(rec connectors.CommitRecord) (connectors.CommitRecord, error) {
	same := func(got *string, want string) bool {
		if *got == "" {
			*got = want
		}
		return *got == want
	}
	if rec.Lease == 0 {
		rec.Lease = w.spec.Lease
	}
	if !same(&rec.Job, w.spec.Job) || !same(&rec.Run, w.spec.Run) || !same(&rec.Partition, w.spec.Partition) || rec.Lease != w.spec.Lease {
		return rec, fmt.Errorf("%s sink: the writer of job %s run %s partition %s under lease %d was given the record of job %s run %s partition %s under lease %d",
			typeName, w.spec.Job, w.spec.Run, w.spec.Partition, w.spec.Lease, rec.Job, rec.Run, rec.Partition, rec.Lease)
	}
	return rec, nil
}

// render turns the pending rows into commands, each the arguments of a
// Do, and lists the keys to watch: the record key first, then the row
// keys in order.
func (w *writer) render() (ops [][]any, keys []string, err error) {
	var n int64
	for _, b := range w.pending {
		n += b.NumRows()
	}
	keys = make([]string, 1, 1+n)
	keys[0] = w.key
	ops = make([][]any, 0, n)
	fields := w.spec.Schema.Fields()
	for _, rec := range w.pending {
		fmts, err := w.formatters(rec)
		if err != nil {
			return nil, nil, err
		}
		cols := rec.Columns()
		for r := 0; r < int(rec.NumRows()); r++ {
			kb, err := w.appendKey(rec, fmts, r)
			if err != nil {
				return nil, nil, err
			}
			key := string(kb)
			keys = append(keys, key)
			hset := make([]any, 2, 2+2*len(cols))
			hset[0], hset[1] = "hset", key
			var hdel []any
			for c, fm := range fmts {
				if cols[c].IsNull(r) {
					if hdel == nil {
						hdel = []any{"hdel", key}
					}
					hdel = append(hdel, fields[c].Name)
					continue
				}
				w.text = fm(w.text[:0], r)
				hset = append(hset, fields[c].Name, string(w.text))
			}
			// hset always has a field: the template's columns are not NULL.
			ops = append(ops, hset)
			if hdel != nil {
				ops = append(ops, hdel)
			}
			if w.s.ttl > 0 {
				ops = append(ops, []any{"expire", key, int64(w.s.ttl.Seconds())})
			}
		}
	}
	return ops, keys, nil
}

// exec is one attempt at a commit, with the record key and rowKeys
// watched: it checks the lease and the keys' types, then sends ops and the
// record in one MULTI/EXEC. It returns redis.TxFailedErr when the EXEC was
// aborted.
func (w *writer) exec(ctx context.Context, tx *redis.Tx, lease int64, ops [][]any, rowKeys []string, data []byte) error {
	part := w.spec.Partition
	var stored *redis.StringCmd
	types := make([]*redis.StatusCmd, len(rowKeys))
	// Each reply is checked below; the pipeline's own error is the first of them.
	_, _ = tx.Pipelined(ctx, func(p redis.Pipeliner) error {
		stored = p.Get(ctx, w.key)
		for i, k := range rowKeys {
			types[i] = p.Type(ctx, k)
		}
		return nil
	})
	got, found, err := w.s.readRecord(stored, w.key)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("%s sink: partition %s of job %s run %s has no commit record: it was never claimed, or its run forgotten: %w", typeName, part, w.spec.Job, w.spec.Run, connectors.ErrLeaseLost)
	case got.Lease > lease:
		return fmt.Errorf("%s sink: partition %s of job %s run %s: lease %d claimed it after lease %d: %w", typeName, part, w.spec.Job, w.spec.Run, got.Lease, lease, connectors.ErrLeaseLost)
	case got.Lease != lease:
		return fmt.Errorf("%s sink: partition %s of job %s run %s: the commit record holds lease %d, not %d (claim before writing): %w", typeName, part, w.spec.Job, w.spec.Run, got.Lease, lease, connectors.ErrLeaseLost)
	}
	for i, t := range types {
		typ, err := t.Result()
		if err != nil {
			return w.s.fail("commit: type "+rowKeys[i], err)
		}
		if typ != "hash" && typ != "none" {
			return w.s.fail("hset "+rowKeys[i], fmt.Errorf("WRONGTYPE the key holds a %s, not a hash; nothing of the commit was sent", typ))
		}
	}
	var record *redis.StatusCmd
	cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, op := range ops {
			p.Do(ctx, op...)
		}
		record = p.Set(ctx, w.key, data, 0)
		return nil
	})
	switch {
	case err == nil || errors.Is(err, redis.TxFailedErr):
		return err
	case record.Err() == nil:
		// EXEC ran and a row's command failed in it. Redis does not roll
		// back, so the record went in without that row; the checks above
		// are there so that this does not happen.
		for _, cmd := range cmds {
			if cerr := cmd.Err(); cerr != nil && len(cmd.Args()) > 1 {
				return fmt.Errorf("%s sink %s: %s %v: %w (inside EXEC: the commit's other rows and its record were applied without it)", typeName, w.s.where, cmd.Name(), cmd.Args()[1], cerr)
			}
		}
	}
	return w.s.fail("commit: exec", err)
}

// Close drops the rows not committed; nothing of them was sent.
func (w *writer) Close() error {
	for _, b := range w.pending {
		b.Release()
	}
	w.pending, w.closed = nil, true
	return nil
}
