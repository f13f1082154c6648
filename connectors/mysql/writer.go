package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/go-sql-driver/mysql"

	"github.com/datashift/datashift/connectors"
)

// flushBytes is how much encoded data the writer gathers before handing it
// to the LOAD DATA stream.
const flushBytes = 256 << 10

var (
	readerSeq    atomic.Uint64
	readerPrefix = func() string {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		return "datashift-" + hex.EncodeToString(b) + "-"
	}()
	errAbandoned = errors.New("writer closed without commit")
)

// writer writes one partition. Between commits it holds one transaction on
// its own connection; with LOAD DATA, one statement streams every row of
// the transaction from an io.Pipe the writer feeds. The transaction touches
// the commit record only at Commit.
type writer struct {
	s       *sink
	conn    *sql.Conn
	ctx     context.Context // lives as long as the writer: the transaction's context
	cancel  context.CancelFunc
	spec    connectors.WriterSpec
	targets []fieldTarget
	keyIdx  []int
	insert  bool // multi-row INSERTs instead of LOAD DATA

	tx   *sql.Tx
	load *loadStream
	buf  []byte
	encs []encodeFunc
	// segs remember the key columns of the rows sent in the current
	// statement, so a warning "at row N" can name the row's key.
	segs []segment
	sent int64 // rows sent in the current LOAD statement
	cols string
	// pipe is the current statement's pipe, for the cancel callback, which
	// runs on its own goroutine.
	pipe atomic.Pointer[io.PipeWriter]
	// failed is the error of a Write that left the transaction half-written:
	// the partition must be retried from its checkpoint, not committed.
	failed error
}

type segment struct {
	start int64
	keys  []arrow.Array
}

// loadStream is one running LOAD DATA LOCAL statement.
type loadStream struct {
	pw   *io.PipeWriter
	done chan loadResult
	// fed is set once the server has read data: LOAD DATA LOCAL was accepted.
	fed bool
}

type loadResult struct {
	res sql.Result
	err error
}

var _ connectors.Writer = (*writer)(nil)

func newWriter(s *sink, conn *sql.Conn, spec connectors.WriterSpec, targets []fieldTarget, keyIdx []int) (*writer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.target.quoted()
	}
	return &writer{
		s: s, conn: conn, ctx: ctx, cancel: cancel, spec: spec, targets: targets, keyIdx: keyIdx,
		insert: s.noLoad.Load(), encs: make([]encodeFunc, len(targets)),
		cols: strings.Join(names, ", "),
	}, nil
}

// watch aborts the writer's statement when the caller's ctx ends.
func (w *writer) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		if pw := w.pipe.Load(); pw != nil {
			pw.CloseWithError(ctx.Err())
		}
		w.cancel()
	})
}

func (w *writer) begin() error {
	if w.tx != nil {
		return nil
	}
	tx, err := w.conn.BeginTx(w.ctx, nil)
	if err != nil {
		return classify(fmt.Errorf("mysql sink %s: begin: %w", w.s.table, err))
	}
	w.tx = tx
	return nil
}

func (w *writer) bind(rec arrow.RecordBatch, f format) error {
	if int(rec.NumCols()) != len(w.targets) {
		return fmt.Errorf("mysql sink %s: batch has %d columns, writer schema %d", w.s.table, rec.NumCols(), len(w.targets))
	}
	for i := range w.targets {
		enc, err := w.targets[i].encoder(rec.Column(i), f)
		if err != nil {
			return fmt.Errorf("mysql sink %s: %w", w.s.table, err)
		}
		w.encs[i] = enc
	}
	return nil
}

func (w *writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if w.failed != nil {
		return fmt.Errorf("mysql sink %s: writer failed earlier: %w", w.s.table, w.failed)
	}
	if rec.NumRows() == 0 {
		return nil
	}
	err := w.write(ctx, rec)
	if err != nil {
		w.failed = err
	}
	return err
}

func (w *writer) write(ctx context.Context, rec arrow.RecordBatch) error {
	if err := w.ctx.Err(); err != nil {
		return fmt.Errorf("mysql sink %s: writer aborted: %w", w.s.table, err)
	}
	stop := w.watch(ctx)
	defer stop()
	if err := w.begin(); err != nil {
		return err
	}
	if w.insert {
		return w.insertRows(rec)
	}
	err := w.loadRows(rec)
	if err != nil && !w.load.fed && isLoadRefused(err) {
		if w.s.bulk == bulkLoad {
			return fmt.Errorf("mysql sink %s: LOAD DATA LOCAL INFILE refused (option bulk=load_data): %w", w.s.table, err)
		}
		// Refused before any row went in: start over with INSERTs.
		w.s.refuseLoad(err.Error())
		w.abortLoad()
		w.insert = true
		if err := w.begin(); err != nil {
			return err
		}
		return w.insertRows(rec)
	}
	return err
}

// isLoadRefused recognizes "LOAD DATA LOCAL is disabled" from server or client.
func isLoadRefused(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1148, // ER_NOT_ALLOWED_COMMAND
			4166, // MariaDB: local infile capability disabled
			3948, // MySQL: loading local data is disabled
			2068: // CR_LOAD_DATA_LOCAL_INFILE_REJECTED
			return true
		}
	}
	return false
}

// loadSQL is the LOAD DATA statement reading the named reader.
func (w *writer) loadSQL(reader string) string {
	var b strings.Builder
	b.WriteString("LOAD DATA LOCAL INFILE '" + reader + "' ")
	if w.s.cfg.Mode == connectors.Upsert {
		b.WriteString("REPLACE ")
	}
	// CHARACTER SET binary: bytes go in as sent. Text is checked to be UTF-8
	// before it is sent; columns in other character sets convert in SET.
	b.WriteString("INTO TABLE " + w.s.table.quoted() +
		" CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (")
	var sets []string
	for i, t := range w.targets {
		if i > 0 {
			b.WriteString(", ")
		}
		if !t.viaVar {
			b.WriteString(t.target.quoted())
			continue
		}
		v := "@v" + strconv.Itoa(i)
		b.WriteString(v)
		if t.target.kind == kBit {
			sets = append(sets, t.target.quoted()+" = CAST("+v+" AS UNSIGNED)")
		} else {
			sets = append(sets, t.target.quoted()+" = CONVERT("+v+" USING utf8mb4)")
		}
	}
	b.WriteString(")")
	if len(sets) > 0 {
		b.WriteString(" SET " + strings.Join(sets, ", "))
	}
	return b.String()
}

// startLoad starts the LOAD DATA statement of the current transaction.
func (w *writer) startLoad() {
	name := readerPrefix + strconv.FormatUint(readerSeq.Add(1), 10)
	pr, pw := io.Pipe()
	mysql.RegisterReaderHandler(name, func() io.Reader { return pr })
	ls := &loadStream{pw: pw, done: make(chan loadResult, 1)}
	q := w.loadSQL("Reader::" + name)
	tx, ctx := w.tx, w.ctx
	go func() {
		res, err := tx.ExecContext(ctx, q)
		mysql.DeregisterReaderHandler(name)
		if err == nil {
			err = io.ErrClosedPipe // the server stopped reading: later writes fail
			pr.CloseWithError(err)
			ls.done <- loadResult{res: res}
			return
		}
		pr.CloseWithError(err)
		ls.done <- loadResult{res: res, err: err}
	}()
	w.load = ls
	w.pipe.Store(pw)
	w.sent = 0
}

// loadRows encodes rec as LOAD DATA input and streams it.
func (w *writer) loadRows(rec arrow.RecordBatch) error {
	if w.load == nil {
		w.startLoad()
	}
	if err := w.bind(rec, fmtTSV); err != nil {
		return err
	}
	w.remember(rec)
	n := int(rec.NumRows())
	for i := 0; i < n; i++ {
		for c := range w.targets {
			if c > 0 {
				w.buf = append(w.buf, '\t')
			}
			var err error
			if w.buf, err = w.appendValue(w.buf, rec, c, i, fmtTSV); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, '\n')
		if len(w.buf) >= flushBytes {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	w.sent += int64(n)
	// Flush each batch: the first flush is where a refused LOAD DATA shows,
	// while this batch can still be re-sent as INSERTs.
	return w.flush()
}

// appendValue appends column c of row i, or a ValueError naming the key.
func (w *writer) appendValue(dst []byte, rec arrow.RecordBatch, c, i int, f format) ([]byte, error) {
	col := rec.Column(c)
	if col.IsNull(i) {
		t := w.targets[c].target
		if !t.nullable && !t.autoInc {
			return dst, w.valueError(rec, c, i, errors.New("NULL into a NOT NULL column"))
		}
		if f == fmtSQL {
			return append(dst, "NULL"...), nil
		}
		return append(dst, '\\', 'N'), nil
	}
	out, err := w.encs[c](dst, i)
	if err != nil {
		return dst, w.valueError(rec, c, i, err)
	}
	return out, nil
}

func (w *writer) valueError(rec arrow.RecordBatch, c, i int, cause error) error {
	ve := &connectors.ValueError{Column: w.targets[c].field.Name, Reason: cause.Error()}
	if w.keyIdx != nil {
		ve.Key = connectors.KeyOf(rec, w.keyIdx, i)
	}
	v := connectors.ValueAt(rec.Column(c), i)
	switch x := v.(type) {
	case string:
		ve.Value = strconv.Quote(x[:min(len(x), 64)])
	case []byte:
		ve.Value = fmt.Sprintf("%x", x[:min(len(x), 32)])
	default:
		ve.Value = fmt.Sprint(x)
	}
	return fmt.Errorf("mysql sink %s: %w", w.s.table, ve)
}

// remember keeps the key columns of rec for mapping server warnings to keys.
func (w *writer) remember(rec arrow.RecordBatch) {
	if w.keyIdx == nil {
		return
	}
	keys := make([]arrow.Array, len(w.keyIdx))
	for j, c := range w.keyIdx {
		keys[j] = rec.Column(c)
		keys[j].Retain()
	}
	w.segs = append(w.segs, segment{start: w.sent, keys: keys})
}

func (w *writer) forget() {
	for _, s := range w.segs {
		for _, a := range s.keys {
			a.Release()
		}
	}
	w.segs = w.segs[:0]
}

// keyOfRow is the key of the n-th row (from 0) of the current statement.
func (w *writer) keyOfRow(n int64) connectors.Key {
	for j := len(w.segs) - 1; j >= 0; j-- {
		s := w.segs[j]
		if n >= s.start {
			i := int(n - s.start)
			if len(s.keys) == 0 || i >= s.keys[0].Len() {
				return nil
			}
			k := make(connectors.Key, len(s.keys))
			for c, a := range s.keys {
				v := connectors.ValueAt(a, i)
				if b, ok := v.([]byte); ok {
					v = append([]byte(nil), b...)
				}
				k[c] = v
			}
			return k
		}
	}
	return nil
}

func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.load.pw.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		return w.loadFailed(err)
	}
	w.load.fed = true
	return nil
}

// loadFailed turns a failed pipe write into the statement's error.
func (w *writer) loadFailed(err error) error {
	// The statement ended (or is being cancelled): its result says why.
	w.load.pw.CloseWithError(errAbandoned)
	res := <-w.load.done
	w.load.done <- res // keep it for abortLoad
	if res.err != nil {
		err = res.err
	}
	return classify(fmt.Errorf("mysql sink %s: LOAD DATA: %w", w.s.table, err))
}

// abortLoad ends the current statement and transaction without committing.
func (w *writer) abortLoad() {
	if w.load != nil {
		w.load.pw.CloseWithError(errAbandoned)
		<-w.load.done
		w.load = nil
	}
	if w.tx != nil {
		_ = w.tx.Rollback()
		w.tx = nil
	}
	w.buf = w.buf[:0]
	w.forget()
}

// Commit ends the transaction's LOAD DATA stream, stores rec in the same
// transaction if the record still carries rec.Lease (storeRecord), and
// commits. A commit with no rows since the last opens a transaction for the
// record alone. Once a commit fails, its rows are gone with the rolled-back
// transaction and the writer is done: a later commit would store a record
// for rows that are not there.
func (w *writer) Commit(ctx context.Context, rec connectors.CommitRecord) error {
	if w.failed != nil {
		return fmt.Errorf("mysql sink %s: writer failed earlier: %w", w.s.table, w.failed)
	}
	if err := w.ctx.Err(); err != nil {
		return fmt.Errorf("mysql sink %s: writer aborted: %w", w.s.table, err)
	}
	if rec.Job != "" && rec.Job != w.spec.Job || rec.Run != "" && rec.Run != w.spec.Run ||
		rec.Partition != "" && rec.Partition != w.spec.Partition {
		return fmt.Errorf("mysql sink %s: the writer of partition %s/%s/%s was given the record of %s/%s/%s",
			w.s.table, w.spec.Job, w.spec.Run, w.spec.Partition, rec.Job, rec.Run, rec.Partition)
	}
	pos, err := positionJSON(rec.Position)
	if err != nil {
		return fmt.Errorf("mysql sink %s: partition %s: position %s: %w", w.s.table, w.spec.Partition, rec.Position, err)
	}
	stop := w.watch(ctx)
	defer stop()
	if err := w.commit(rec, pos); err != nil {
		w.abortLoad()
		w.failed = err
		return err
	}
	return nil
}

func (w *writer) commit(rec connectors.CommitRecord, pos any) error {
	if err := w.begin(); err != nil {
		return err
	}
	if w.load != nil {
		if err := w.finishLoad(); err != nil {
			return err
		}
	}
	w.forget()
	if err := w.storeRecord(rec, pos); err != nil {
		return err
	}
	err := w.tx.Commit()
	w.tx = nil
	if err != nil {
		return classify(fmt.Errorf("mysql sink %s: commit: %w", w.s.table, err))
	}
	return nil
}

// finishLoad ends the LOAD DATA stream and checks what the server says:
// LOAD DATA LOCAL turns errors into warnings and skips or clips the row, so
// any warning fails the commit.
func (w *writer) finishLoad() error {
	if err := w.flush(); err != nil {
		return err
	}
	w.load.pw.Close()
	res := <-w.load.done
	w.load = nil
	if res.err != nil {
		return classify(fmt.Errorf("mysql sink %s: LOAD DATA: %w", w.s.table, res.err))
	}
	if err := w.checkWarnings(w.tx); err != nil {
		return err
	}
	if n, err := res.res.RowsAffected(); err == nil && w.s.cfg.Mode != connectors.Upsert && n != w.sent {
		return fmt.Errorf("mysql sink %s: LOAD DATA stored %d of %d rows and gave no warning", w.s.table, n, w.sent)
	}
	return nil
}

var (
	warnColumnRE = regexp.MustCompile("[Cc]olumn (?:'([^']*)'|((?:`(?:[^`]|``)*`\\.)*`(?:[^`]|``)*`))")
	warnRowRE    = regexp.MustCompile(`(?:at row|^Row) (\d+)`)
)

// Notes that mean a value changed (MariaDB files some roundings as notes).
var lossyNotes = map[uint16]bool{1265: true, 1264: true, 1292: true, 1366: true, 1263: true}

// checkWarnings fails on the first warning of the last statement that says
// a value was lost, naming the column and, from "at row N", the key.
func (w *writer) checkWarnings(q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) error {
	rows, err := q.QueryContext(w.ctx, "SHOW WARNINGS")
	if err != nil {
		return classify(fmt.Errorf("mysql sink %s: show warnings: %w", w.s.table, err))
	}
	defer rows.Close()
	for rows.Next() {
		var level, msg string
		var code uint16
		if err := rows.Scan(&level, &code, &msg); err != nil {
			return classify(err)
		}
		if strings.EqualFold(level, "Note") && !lossyNotes[code] {
			continue
		}
		return w.warningError(code, msg)
	}
	return classify(rows.Err())
}

func (w *writer) warningError(code uint16, msg string) error {
	if code == 1062 {
		return fmt.Errorf("mysql sink %s: %s: the row is already in the table (LOAD DATA would have skipped it)", w.s.table, msg)
	}
	col := ""
	if m := warnColumnRE.FindStringSubmatch(msg); m != nil {
		col = m[1]
		if col == "" {
			parts := strings.Split(m[2], "`.`")
			col = strings.ReplaceAll(strings.Trim(parts[len(parts)-1], "`"), "``", "`")
		}
	}
	var key connectors.Key
	if m := warnRowRE.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.ParseInt(m[1], 10, 64); err == nil {
			key = w.keyOfRow(n - 1)
		}
	}
	if col == "" {
		return fmt.Errorf("mysql sink %s: the server changed or skipped a row (%d: %s)", w.s.table, code, msg)
	}
	return fmt.Errorf("mysql sink %s: %w", w.s.table,
		&connectors.ValueError{Column: col, Key: key, Reason: fmt.Sprintf("the server would not store it as sent (%d: %s)", code, msg)})
}

// insertRows writes rec with multi-row INSERTs of at most maxStmt bytes.
func (w *writer) insertRows(rec arrow.RecordBatch) error {
	if err := w.bind(rec, fmtSQL); err != nil {
		return err
	}
	verb := "INSERT INTO "
	if w.s.cfg.Mode == connectors.Upsert {
		verb = "REPLACE INTO "
	}
	head := verb + w.s.table.quoted() + " (" + w.cols + ") VALUES "
	n := int(rec.NumRows())
	first := 0
	w.buf = append(w.buf[:0], head...)
	for i := 0; i < n; i++ {
		mark := len(w.buf)
		if i > first {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, '(')
		for c := range w.targets {
			if c > 0 {
				w.buf = append(w.buf, ',')
			}
			var err error
			if w.buf, err = w.appendValue(w.buf, rec, c, i, fmtSQL); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, ')')
		if len(w.buf) > w.s.maxStmt && i > first {
			// Send what came before this row, start the next statement with it.
			row := append([]byte(nil), w.buf[mark+1:]...)
			w.buf = w.buf[:mark]
			if err := w.execInsert(rec, first); err != nil {
				return err
			}
			first = i
			w.buf = append(append(w.buf[:0], head...), row...)
		}
		if len(w.buf) > w.s.maxStmt {
			var key connectors.Key
			if w.keyIdx != nil {
				key = connectors.KeyOf(rec, w.keyIdx, i)
			}
			return fmt.Errorf("mysql sink %s: row with key %s is %d bytes, more than one INSERT may carry (max_allowed_packet)", w.s.table, key, len(w.buf)-len(head))
		}
	}
	return w.execInsert(rec, first)
}

func (w *writer) execInsert(rec arrow.RecordBatch, first int) error {
	// The driver copies the statement into its packet buffer and keeps
	// nothing: view the bytes instead of copying megabytes into a string.
	_, err := w.tx.ExecContext(w.ctx, unsafe.String(unsafe.SliceData(w.buf), len(w.buf)))
	w.buf = w.buf[:0]
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			// Strict mode: truncations are errors naming column and row.
			w.segs = append(w.segs[:0], segment{start: 0, keys: keyArrays(rec, w.keyIdx, first)})
			defer w.forget()
			return w.warningError(me.Number, me.Message)
		}
		return classify(fmt.Errorf("mysql sink %s: insert: %w", w.s.table, err))
	}
	return w.checkWarnings(w.tx)
}

// keyArrays returns the key columns of rec from row first on, retained.
func keyArrays(rec arrow.RecordBatch, keyIdx []int, first int) []arrow.Array {
	if keyIdx == nil {
		return nil
	}
	sl := rec.NewSlice(int64(first), rec.NumRows())
	defer sl.Release()
	out := make([]arrow.Array, len(keyIdx))
	for j, c := range keyIdx {
		out[j] = sl.Column(c)
		out[j].Retain()
	}
	return out
}

func (w *writer) Close() error {
	w.abortLoad()
	w.cancel()
	return w.conn.Close()
}
