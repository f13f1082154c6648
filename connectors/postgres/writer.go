package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// stageTable is the session's temporary table for upserts and for columns
// whose type has no binary encoder here; dropped at each commit.
const stageTable = `"datashift_stage"`

var errWriterClosed = errors.New("writer closed without commit")

// writer writes one partition: BEGIN, then one COPY … FROM STDIN (FORMAT
// binary) fed through an io.Pipe while Write encodes batches, closed, merged
// and followed by the commit record's UPDATE by Commit, and committed. A
// COPY runs in a goroutine (pgconn.CopyFrom reads the pipe); Write blocks
// while the server catches up.
type writer struct {
	sink    *Sink
	conn    *pgx.Conn
	schema  *arrow.Schema
	encs    []encoder
	notNull []bool // target columns that refuse NULL
	keyIdx  []int
	spec    connectors.WriterSpec

	commits   string // the commit table, quoted
	recordSQL string // the UPDATE of the partition's commit record

	copySQL  string // COPY <target or stage> (cols) FROM STDIN (FORMAT binary)
	stageDDL string // CREATE TEMP TABLE …, "" when writing straight to the table
	mergeSQL string // INSERT … SELECT … FROM stage [ON CONFLICT …]

	inTx   bool
	pw     *io.PipeWriter
	done   chan error // the COPY's result
	cancel context.CancelFunc
	header bool // the COPY header is still to be written

	buf    []byte
	rowLen []int
	cursor []int
	broken error // after a failed COPY the writer can only be closed
}

var _ connectors.Writer = (*writer)(nil)

// plan builds the statements for the target columns: straight COPY into the
// table, or COPY into a staging table and INSERT … SELECT from it for
// upserts and for columns written as text and cast by the server.
func (w *writer) plan(targets []column) {
	s := w.sink
	w.notNull = make([]bool, len(targets))
	names := make([]string, len(targets))
	stageCols := make([]string, len(targets))
	selects := make([]string, len(targets))
	staged := s.cfg.Mode == connectors.Upsert
	for i := range targets {
		t := &targets[i]
		w.notNull[i] = t.notNull
		names[i] = quoteIdent(t.name)
		selects[i] = names[i]
		stageCols[i] = names[i] + " " + t.sqlType
		if t.kind() == kCast {
			staged = true
			stageCols[i] = names[i] + " text"
			selects[i] = names[i] + "::" + t.sqlType
		}
	}
	cols := "(" + strings.Join(names, ", ") + ")"
	if !staged {
		w.copySQL = "COPY " + s.what + " " + cols + " FROM STDIN (FORMAT binary)"
		return
	}
	w.stageDDL = "CREATE TEMP TABLE " + stageTable + " (" + strings.Join(stageCols, ", ") + ") ON COMMIT DROP"
	w.copySQL = "COPY " + stageTable + " " + cols + " FROM STDIN (FORMAT binary)"
	insert := "INSERT INTO " + s.what + " " + cols + " SELECT "
	if s.cfg.Mode != connectors.Upsert {
		w.mergeSQL = insert + strings.Join(selects, ", ") + " FROM " + stageTable
		return
	}
	keys := make([]string, len(s.cfg.Key))
	isKey := map[string]bool{}
	for i, k := range s.cfg.Key {
		keys[i] = quoteIdent(k)
		isKey[k] = true
	}
	var sets []string
	for i := range targets {
		if !isKey[targets[i].name] {
			sets = append(sets, names[i]+" = EXCLUDED."+names[i])
		}
	}
	// The same key twice in one commit would make ON CONFLICT touch a row
	// twice, which PostgreSQL refuses: keep the last written (a fresh temp
	// table's ctid order is insertion order).
	kl := strings.Join(keys, ", ")
	w.mergeSQL = insert + "DISTINCT ON (" + kl + ") " + strings.Join(selects, ", ") + " FROM " + stageTable +
		" ORDER BY " + kl + ", ctid DESC ON CONFLICT (" + kl + ") "
	if len(sets) == 0 {
		w.mergeSQL += "DO NOTHING"
	} else {
		w.mergeSQL += "DO UPDATE SET " + strings.Join(sets, ", ")
	}
}

// fail names the table and partition; value errors stay findable with
// errors.As and are never marked retryable.
func (w *writer) fail(err error) error {
	return w.sink.fail(fmt.Errorf("partition %s: %w", w.spec.Partition, err))
}

// start opens the transaction and the COPY.
func (w *writer) start(ctx context.Context) error {
	if _, err := w.conn.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	w.inTx = true
	if w.stageDDL != "" {
		if _, err := w.conn.Exec(ctx, w.stageDDL); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
	}
	pr, pw := io.Pipe()
	copyCtx, cancel := context.WithCancel(context.Background())
	w.pw, w.cancel, w.done, w.header = pw, cancel, make(chan error, 1), true
	pgc := w.conn.PgConn()
	sql := w.copySQL
	go func() {
		_, err := pgc.CopyFrom(copyCtx, pr, sql)
		if err == nil {
			err = io.ErrClosedPipe // nothing more may be written
		}
		pr.CloseWithError(err)
		w.done <- err
	}()
	return nil
}

// Write encodes rec into the COPY stream. The rows are not durable until
// Commit returns.
func (w *writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if w.broken != nil {
		return w.broken
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if !w.inTx {
		if err := w.start(ctx); err != nil {
			w.broken = w.fail(err)
			return w.broken
		}
	}
	if err := w.encode(rec); err != nil {
		w.broken = w.fail(err)
		return w.broken
	}
	stop := context.AfterFunc(ctx, w.cancel)
	_, err := w.pw.Write(w.buf)
	stop()
	if err != nil {
		w.broken = w.fail(w.copyError(ctx, err))
		return w.broken
	}
	return nil
}

// copyError waits for the COPY to end after a failed pipe write and returns
// the more telling of the two errors (the server's, usually).
func (w *writer) copyError(ctx context.Context, err error) error {
	w.pw.CloseWithError(err)
	cerr := <-w.done
	w.done = nil
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
		return cerr
	}
	return err
}

// encode lays rec out in the binary COPY format in w.buf, column by column.
func (w *writer) encode(rec arrow.RecordBatch) error {
	n := int(rec.NumRows())
	if cap(w.rowLen) < n {
		w.rowLen = make([]int, n)
		w.cursor = make([]int, n)
	}
	rowLen, cursor := w.rowLen[:n], w.cursor[:n]
	for i := range rowLen {
		rowLen[i] = 2
	}
	for c, enc := range w.encs {
		arr := rec.Column(c)
		if w.notNull[c] && arr.NullN() > 0 {
			row := 0
			for arr.IsValid(row) {
				row++
			}
			return &connectors.ValueError{Column: w.schema.Field(c).Name, Key: w.key(rec, row),
				Value: "NULL", Reason: "the target column is NOT NULL"}
		}
		if bad := enc.size(arr, rowLen); bad != nil {
			return &connectors.ValueError{
				Column: w.schema.Field(c).Name,
				Key:    w.key(rec, bad.row),
				Value:  bad.value,
				Reason: bad.reason,
			}
		}
	}
	total := 0
	if w.header {
		total = 19
	}
	for i, l := range rowLen {
		cursor[i] = total + 2
		total += l
	}
	if cap(w.buf) < total {
		w.buf = make([]byte, total, total+total/4)
	}
	buf := w.buf[:total]
	if w.header {
		copy(buf, copySignature)
		clear(buf[11:19]) // flags and header extension length
		w.header = false
	}
	ncols := uint16(len(w.encs))
	for i := range cursor {
		binary.BigEndian.PutUint16(buf[cursor[i]-2:], ncols)
	}
	for c, enc := range w.encs {
		enc.write(rec.Column(c), buf, cursor)
	}
	w.buf = buf
	return nil
}

func (w *writer) key(rec arrow.RecordBatch, row int) connectors.Key {
	if len(w.keyIdx) == 0 {
		return nil
	}
	return connectors.KeyOf(rec, w.keyIdx, row)
}

// Commit ends the COPY, merges a staging table, stores rec in the commit
// table and commits: the rows written since the last commit and the record
// become durable at once. The record is only stored while it carries
// rec.Lease; when a newer lease has claimed the partition the UPDATE
// matches no row, and the transaction is rolled back, rows and all. With
// no rows written since the last commit, the transaction is the UPDATE
// alone.
func (w *writer) Commit(ctx context.Context, rec connectors.CommitRecord) error {
	if w.broken != nil {
		return w.broken
	}
	args, err := recordArgs(w.spec, rec)
	if err != nil {
		return w.fail(err)
	}
	if !w.inTx {
		tag, err := w.conn.Exec(ctx, w.recordSQL, args...)
		if err == nil && tag.RowsAffected() == 0 {
			err = leaseLost(w.commits, w.spec, rec.Lease)
		}
		if err != nil {
			w.broken = w.fail(err)
			return w.broken
		}
		return nil
	}
	stop := context.AfterFunc(ctx, w.cancel)
	buf := w.buf[:0]
	if w.header {
		buf = append(buf, copySignature...)
		buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
		w.header = false
	}
	buf = append(buf, 0xFF, 0xFF) // trailer
	_, err = w.pw.Write(buf)
	if err == nil {
		w.pw.Close()
		err = <-w.done
		w.done = nil
	} else {
		err = w.copyError(ctx, err)
	}
	stop()
	if errors.Is(err, io.ErrClosedPipe) {
		err = nil
	}
	if err == nil && w.mergeSQL != "" {
		if _, err = w.conn.Exec(ctx, w.mergeSQL); err != nil {
			err = fmt.Errorf("merge staged rows: %w", err)
		}
	}
	if err == nil {
		var tag pgconn.CommandTag
		if tag, err = w.conn.Exec(ctx, w.recordSQL, args...); err != nil {
			err = fmt.Errorf("store the commit record in %s: %w", w.commits, err)
		} else if tag.RowsAffected() == 0 {
			err = leaseLost(w.commits, w.spec, rec.Lease)
			if _, rerr := w.conn.Exec(ctx, "ROLLBACK"); rerr == nil {
				w.inTx = false
			}
		}
	}
	if err == nil {
		_, err = w.conn.Exec(ctx, "COMMIT")
	}
	if err != nil {
		w.broken = w.fail(err)
		return w.broken
	}
	w.inTx = false
	w.cancel()
	return nil
}

// Close abandons uncommitted rows (CopyFail, ROLLBACK) and gives the
// connection back.
func (w *writer) Close() error {
	if w.conn == nil {
		return nil
	}
	if w.done != nil {
		w.pw.CloseWithError(errWriterClosed) // pgconn sends CopyFail
		<-w.done
		w.done = nil
	}
	if w.cancel != nil {
		w.cancel()
	}
	if w.inTx && !w.conn.IsClosed() {
		if _, err := w.conn.Exec(context.Background(), "ROLLBACK"); err != nil {
			w.sink.conn.discard(w.conn)
			w.conn = nil
			return nil
		}
	}
	w.sink.conn.put(w.conn)
	w.conn = nil
	return nil
}
