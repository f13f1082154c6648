package sqlite

// A thin layer over the SQLite C API as modernc.org/sqlite transpiles it
// (package modernc.org/sqlite/lib). database/sql hands every value over as a
// driver.Value, boxing each int64 and float64 and copying each text twice;
// on the copy path that per-value work is most of the cost, so reads step the
// statement and copy column values straight into Arrow builders, and writes
// bind from Arrow arrays. Everything else (metadata, DDL) uses the same
// layer so that one connection type serves all.
//
// Memory rule: the transpiled C code may only be given C memory (from
// sqlite3_malloc); a Go pointer turned into a uintptr is invisible to the
// garbage collector and trips the race detector's checkptr. Text and blobs to
// bind are therefore copied into a C arena, and values SQLite returns are C
// memory, valid until the next step.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/datashift/datashift/connectors"
)

// Storage classes (sqlite3_column_type).
const (
	typInteger = sqlite3.SQLITE_INTEGER
	typFloat   = sqlite3.SQLITE_FLOAT
	typText    = sqlite3.SQLITE_TEXT
	typBlob    = sqlite3.SQLITE_BLOB
	typNull    = sqlite3.SQLITE_NULL
)

// sqliteError is an error SQLite returned, with its extended result code.
type sqliteError struct {
	Code int32
	Msg  string
}

func (e *sqliteError) Error() string { return e.Msg }

// busy reports whether the error is a lock that outlived the busy timeout;
// the same work may succeed later.
func (e *sqliteError) busy() bool {
	primary := e.Code & 0xff
	return primary == sqlite3.SQLITE_BUSY || primary == sqlite3.SQLITE_LOCKED
}

func isInterrupt(err error) bool {
	var se *sqliteError
	return errors.As(err, &se) && se.Code&0xff == sqlite3.SQLITE_INTERRUPT
}

// liteConn is one SQLite connection. It is used by one goroutine at a time
// (its libc.TLS is not safe for concurrent use); only interrupt may be called
// from another goroutine.
type liteConn struct {
	tls *libc.TLS
	db  uintptr
	out uintptr // 16 bytes of C memory for out-parameters

	mu     sync.Mutex // guards db against interrupt racing close
	closed bool
}

// openLite opens path (a file name or a file: URI). create allows a missing
// file to be created; without it a missing file is an error.
func openLite(path string, create bool, busyMS int) (*liteConn, error) {
	c := &liteConn{tls: libc.NewTLS()}
	c.out = sqlite3.Xsqlite3_malloc64(c.tls, 16)
	if c.out == 0 {
		c.tls.Close()
		return nil, errors.New("sqlite: out of memory")
	}
	name := c.cstring(path)
	defer sqlite3.Xsqlite3_free(c.tls, name)
	flags := int32(sqlite3.SQLITE_OPEN_READWRITE | sqlite3.SQLITE_OPEN_URI | sqlite3.SQLITE_OPEN_NOMUTEX)
	if create {
		flags |= sqlite3.SQLITE_OPEN_CREATE
	}
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, c.out, flags, 0)
	c.db = *(*uintptr)(cptr(c.out))
	if rc != sqlite3.SQLITE_OK {
		err := c.errorOf(rc)
		if c.db != 0 {
			sqlite3.Xsqlite3_close_v2(c.tls, c.db)
		}
		sqlite3.Xsqlite3_free(c.tls, c.out)
		c.tls.Close()
		return nil, err
	}
	sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, int32(busyMS))
	return c, nil
}

func (c *liteConn) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	var err error
	if rc != sqlite3.SQLITE_OK {
		err = c.errorOf(rc)
	}
	sqlite3.Xsqlite3_free(c.tls, c.out)
	c.tls.Close()
	return err
}

// interruptOn makes a long statement (a sort before the first row, a busy
// wait) stop when ctx is done. The returned stop must be called before the
// connection is closed; after it returns no interrupt is pending.
func (c *liteConn) interruptOn(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	cancel := context.AfterFunc(ctx, func() {
		defer wg.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return
		}
		// A TLS of its own: c.tls belongs to the goroutine running the statement.
		tls := libc.NewTLS()
		sqlite3.Xsqlite3_interrupt(tls, c.db)
		tls.Close()
	})
	return func() {
		if !cancel() {
			wg.Wait() // it ran or is running: wait for it to finish
		}
	}
}

func (c *liteConn) errorOf(rc int32) error {
	msg := ""
	if c.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	}
	if msg == "" || msg == "not an error" {
		msg = libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	}
	err := &sqliteError{Code: rc, Msg: msg}
	if err.busy() {
		return connectors.Transient(err)
	}
	return err
}

// cstring copies s into C memory with a terminating NUL; free it with
// sqlite3_free.
func (c *liteConn) cstring(s string) uintptr {
	p := sqlite3.Xsqlite3_malloc64(c.tls, uint64(len(s)+1))
	if p == 0 {
		panic("sqlite: out of memory")
	}
	b := cbytes(p, len(s)+1)
	copy(b, s)
	b[len(s)] = 0
	return p
}

// prepare compiles one SQL statement. Anything but white space or a
// semicolon after it is refused: a user's Where must not smuggle in a second
// statement that would otherwise be silently ignored.
func (c *liteConn) prepare(query string) (*liteStmt, error) {
	return c.prepareFlags(query, 0)
}

// preparePersistent is prepare for a statement that runs many times
// (SQLITE_PREPARE_PERSISTENT: SQLite allocates it for a long life).
func (c *liteConn) preparePersistent(query string) (*liteStmt, error) {
	return c.prepareFlags(query, sqlite3.SQLITE_PREPARE_PERSISTENT)
}

func (c *liteConn) prepareFlags(query string, flags uint32) (*liteStmt, error) {
	z := c.cstring(query)
	defer sqlite3.Xsqlite3_free(c.tls, z)
	pStmt, pTail := c.out, c.out+8
	rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, z, int32(len(query)), flags, pStmt, pTail)
	if rc != sqlite3.SQLITE_OK {
		return nil, c.errorOf(rc)
	}
	s := &liteStmt{c: c, p: *(*uintptr)(cptr(pStmt))}
	tail := *(*uintptr)(cptr(pTail))
	if rest := strings.Trim(query[int(tail-z):], " \t\r\n;"); rest != "" {
		s.finalize()
		return nil, fmt.Errorf("more than one SQL statement: %q follows the first", rest)
	}
	if s.p == 0 {
		return nil, errors.New("empty SQL statement")
	}
	return s, nil
}

// exec runs a statement that returns no rows of interest.
func (c *liteConn) exec(query string, args ...any) error {
	s, err := c.prepare(query)
	if err != nil {
		return err
	}
	defer s.finalize()
	if err := s.bindAll(args); err != nil {
		return err
	}
	for {
		row, err := s.step()
		if err != nil || !row {
			return err
		}
	}
}

// query runs a statement and calls fn for each row.
func (c *liteConn) query(query string, args []any, fn func(s *liteStmt) error) error {
	s, err := c.prepare(query)
	if err != nil {
		return err
	}
	defer s.finalize()
	if err := s.bindAll(args); err != nil {
		return err
	}
	for {
		row, err := s.step()
		if err != nil || !row {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
	}
}

// changes is the number of rows the connection's last INSERT, UPDATE or
// DELETE changed (sqlite3_changes64).
func (c *liteConn) changes() int64 { return sqlite3.Xsqlite3_changes64(c.tls, c.db) }

// liteStmt is a prepared statement of a liteConn.
type liteStmt struct {
	c *liteConn
	p uintptr
	// arena holds the text and blob values bound to the statement; it lives
	// as long as the statement because SQLite reads bound values only when
	// it steps (they are bound SQLITE_STATIC, with no copy).
	arena     uintptr
	arenaCap  int
	arenaUsed int
}

func (s *liteStmt) finalize() {
	if s.p != 0 {
		sqlite3.Xsqlite3_finalize(s.c.tls, s.p)
		s.p = 0
	}
	if s.arena != 0 {
		sqlite3.Xsqlite3_free(s.c.tls, s.arena)
		s.arena = 0
	}
}

// step advances to the next row; false at the end.
func (s *liteStmt) step() (bool, error) {
	switch rc := sqlite3.Xsqlite3_step(s.c.tls, s.p); rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		return false, nil
	default:
		// The error is kept by the connection; reset so the statement can
		// run again (and so a failed write releases its locks).
		err := s.c.errorOf(rc)
		sqlite3.Xsqlite3_reset(s.c.tls, s.p)
		return false, err
	}
}

// reset makes the statement ready to run again and forgets the arena's
// contents (bindings must be set again before the next step).
func (s *liteStmt) reset() {
	sqlite3.Xsqlite3_reset(s.c.tls, s.p)
	s.arenaUsed = 0
}

func (s *liteStmt) columnCount() int { return int(sqlite3.Xsqlite3_column_count(s.c.tls, s.p)) }
func (s *liteStmt) columnName(i int) string {
	return libc.GoString(sqlite3.Xsqlite3_column_name(s.c.tls, s.p, int32(i)))
}
func (s *liteStmt) columnDeclType(i int) string {
	return libc.GoString(sqlite3.Xsqlite3_column_decltype(s.c.tls, s.p, int32(i)))
}
func (s *liteStmt) colType(i int) int32 { return sqlite3.Xsqlite3_column_type(s.c.tls, s.p, int32(i)) }
func (s *liteStmt) colInt64(i int) int64 {
	return sqlite3.Xsqlite3_column_int64(s.c.tls, s.p, int32(i))
}
func (s *liteStmt) colFloat(i int) float64 {
	return sqlite3.Xsqlite3_column_double(s.c.tls, s.p, int32(i))
}

// colText returns the column as text, as a view of SQLite's memory that is
// valid until the next step or reset: copy it before then.
func (s *liteStmt) colText(i int) []byte {
	p := sqlite3.Xsqlite3_column_text(s.c.tls, s.p, int32(i))
	n := sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i))
	if p == 0 || n == 0 {
		return nil
	}
	return cbytes(p, int(n))
}

// colBlob is colText for blobs.
func (s *liteStmt) colBlob(i int) []byte {
	p := sqlite3.Xsqlite3_column_blob(s.c.tls, s.p, int32(i))
	n := sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i))
	if p == 0 || n == 0 {
		return nil
	}
	return cbytes(p, int(n))
}

// colString copies the column's text into a Go string.
func (s *liteStmt) colString(i int) string { return string(s.colText(i)) }

func (s *liteStmt) bindCheck(rc int32) error {
	if rc != sqlite3.SQLITE_OK {
		return s.c.errorOf(rc)
	}
	return nil
}

// Parameters are numbered from 1.
func (s *liteStmt) bindInt64(i int, v int64) error {
	return s.bindCheck(sqlite3.Xsqlite3_bind_int64(s.c.tls, s.p, int32(i), v))
}
func (s *liteStmt) bindFloat(i int, v float64) error {
	return s.bindCheck(sqlite3.Xsqlite3_bind_double(s.c.tls, s.p, int32(i), v))
}
func (s *liteStmt) bindNull(i int) error {
	return s.bindCheck(sqlite3.Xsqlite3_bind_null(s.c.tls, s.p, int32(i)))
}

// reserve makes room for n more bytes in the arena. It must be called for
// everything bound before the next step, before binding any of it: growing
// the arena moves it, which would leave earlier bindings pointing at freed
// memory.
func (s *liteStmt) reserve(n int) error {
	if s.arenaUsed+n <= s.arenaCap {
		return nil
	}
	if s.arenaUsed != 0 {
		return errors.New("sqlite: arena grown while values are bound")
	}
	size := max(n, 2*s.arenaCap, 4096)
	p := sqlite3.Xsqlite3_realloc64(s.c.tls, s.arena, uint64(size))
	if p == 0 {
		return fmt.Errorf("sqlite: cannot allocate %d bytes", size)
	}
	s.arena, s.arenaCap = p, size
	return nil
}

// alloc hands out n bytes of the arena (reserved before) for a value to bind.
func (s *liteStmt) alloc(n int) (uintptr, []byte) {
	if s.arenaUsed+n > s.arenaCap {
		panic("sqlite: arena overflow")
	}
	p := s.arena + uintptr(s.arenaUsed)
	s.arenaUsed += n
	return p, cbytes(p, n)
}

// bindTextBytes binds b (copied into the reserved arena) as text.
func (s *liteStmt) bindTextBytes(i int, b []byte) error {
	p, dst := s.alloc(len(b))
	copy(dst, b)
	return s.bindTextAt(i, p, len(b))
}

func (s *liteStmt) bindTextString(i int, v string) error {
	p, dst := s.alloc(len(v))
	copy(dst, v)
	return s.bindTextAt(i, p, len(v))
}

// bindTextAt binds n bytes of the arena at p as text.
func (s *liteStmt) bindTextAt(i int, p uintptr, n int) error {
	if n == 0 {
		// A zero-length text with a NULL pointer would be bound as NULL.
		p = emptyText()
	}
	return s.bindCheck(sqlite3.Xsqlite3_bind_text(s.c.tls, s.p, int32(i), p, int32(n), sqlite3.SQLITE_STATIC))
}

func (s *liteStmt) bindBlob(i int, b []byte) error {
	if len(b) == 0 {
		return s.bindCheck(sqlite3.Xsqlite3_bind_zeroblob(s.c.tls, s.p, int32(i), 0))
	}
	p, dst := s.alloc(len(b))
	copy(dst, b)
	return s.bindCheck(sqlite3.Xsqlite3_bind_blob(s.c.tls, s.p, int32(i), p, int32(len(b)), sqlite3.SQLITE_STATIC))
}

// bindAll binds plain Go values (metadata queries, key bounds).
func (s *liteStmt) bindAll(args []any) error {
	need := 0
	for _, a := range args {
		switch v := a.(type) {
		case string:
			need += len(v)
		case []byte:
			need += len(v)
		}
	}
	if err := s.reserve(need); err != nil {
		return err
	}
	for i, a := range args {
		var err error
		switch v := a.(type) {
		case nil:
			err = s.bindNull(i + 1)
		case int64:
			err = s.bindInt64(i+1, v)
		case int:
			err = s.bindInt64(i+1, int64(v))
		case float64:
			err = s.bindFloat(i+1, v)
		case string:
			err = s.bindTextString(i+1, v)
		case []byte:
			err = s.bindBlob(i+1, v)
		default:
			return fmt.Errorf("sqlite: cannot bind %T", a)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// emptyText is one byte of C memory that a zero-length text can point at.
// Allocated on first use: allocating initializes the SQLite library, which
// must not happen as a side effect of importing the package.
var emptyText = sync.OnceValue(func() uintptr {
	tls := libc.NewTLS()
	defer tls.Close()
	p := sqlite3.Xsqlite3_malloc64(tls, 1)
	if p == 0 {
		panic("sqlite: out of memory")
	}
	*(*byte)(cptr(p)) = 0
	return p
})

// cptr turns an address of C memory into a pointer. The address came from
// SQLite's allocator, which Go's garbage collector neither moves nor frees.
func cptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// cbytes views n bytes of C memory at p.
func cbytes(p uintptr, n int) []byte {
	if n > math.MaxInt32 {
		panic("sqlite: value too large")
	}
	return unsafe.Slice((*byte)(cptr(p)), n)
}
