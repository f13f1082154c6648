package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	defaultBatchRows  = 10000
	defaultBatchBytes = 8 << 20
)

func init() {
	connectors.RegisterSource("postgres", func(ctx context.Context, cfg connectors.SourceConfig) (connectors.Source, error) {
		return OpenSource(ctx, cfg)
	}, sourceOptions...)
	connectors.RegisterSink("postgres", func(ctx context.Context, cfg connectors.SinkConfig) (connectors.Sink, error) {
		return OpenSink(ctx, cfg)
	}, sinkOptions...)
}

// The options each side takes (connectors/REFERENCE.md).
var (
	sourceOptions = connectors.Options{}
	sinkOptions   = connectors.Options{
		{Name: "commit_table", Doc: "the commit record table (default `datashift_commits` in the target table's schema; `schema.table` puts it elsewhere)"},
		{Name: "keep_indexes", Doc: "`true` keeps the indexes of a table that is empty when a run begins up to date row by row; by default (`false`) those a build after the rows can make as they were (not one another object depends on, nor a unique one but the job key's) are dropped and built again, all at once, once every row is in"},
	}
)

var (
	_ connectors.Source       = (*Source)(nil)
	_ connectors.PrimaryKeyer = (*Source)(nil)
	_ connectors.Sampler      = (*Source)(nil)
	_ connectors.Counter      = (*Source)(nil)
	_ connectors.Snapshotter  = (*Source)(nil)

	_ connectors.PositionReader = (*Source)(nil)
)

// Source reads a table or a query with COPY … TO STDOUT (FORMAT binary),
// decoding the stream straight into Arrow builders. It is safe for
// concurrent Reads; each takes its own connection.
type Source struct {
	cfg  connectors.SourceConfig
	conn *connector

	what     string        // the table or "query", for messages
	from     string        // FROM target: a quoted table or (query) AS q
	tableOID uint32        // 0 for a query source
	cols     []column      // selected columns, in output order
	keys     []column      // key columns
	schema   *arrow.Schema // Arrow form of cols
	selList  string        // the SELECT list
	mem      memory.Allocator
	all      []column // every column of the table or query
	// cursorConds narrow reads to the incremental window (SourceConfig.Cursor).
	cursorConds []string
}

// snapshotID is the shape of pg_export_snapshot() ids; checked because the id
// is written into SET TRANSACTION SNAPSHOT, which takes no parameters.
var snapshotID = regexp.MustCompile(`^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$`)

// OpenSource checks cfg against the catalog (table or query, key and
// selected columns, the Where filter) and returns a Source.
func OpenSource(ctx context.Context, cfg connectors.SourceConfig) (*Source, error) {
	if (cfg.Table == "") == (cfg.Query == "") {
		return nil, errors.New("postgres source: set exactly one of table and query")
	}
	if cfg.BatchRows < 0 || cfg.BatchBytes < 0 {
		return nil, errors.New("postgres source: batch_rows and batch_bytes must not be negative")
	}
	if _, err := sourceOptions.Values(cfg.Options); err != nil {
		return nil, fmt.Errorf("postgres source: %w", err)
	}
	if cfg.Snapshot != "" && !snapshotID.MatchString(cfg.Snapshot) {
		return nil, fmt.Errorf("postgres source: snapshot %q is not a snapshot id", cfg.Snapshot)
	}
	if cfg.BatchRows == 0 {
		cfg.BatchRows = defaultBatchRows
	}
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = defaultBatchBytes
	}
	cn, err := newConnector(cfg.DSN)
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, conn: cn, mem: memory.DefaultAllocator}
	if err := s.init(ctx); err != nil {
		cn.close()
		return nil, cn.redact(fmt.Errorf("postgres source %s: %w", s.what, err))
	}
	return s, nil
}

func (s *Source) init(ctx context.Context) error {
	conn, err := s.conn.get(ctx)
	if err != nil {
		s.what = s.conn.dsn
		return err
	}
	defer s.conn.put(conn)
	var all []column
	if s.cfg.Table != "" {
		name, err := parseTableName(s.cfg.Table)
		if err != nil {
			return err
		}
		s.what, s.from = name.Sanitize(), name.Sanitize()
		s.tableOID, all, err = lookupTable(ctx, conn, name)
		if err != nil {
			return err
		}
	} else {
		s.what = "query"
		s.from = "(" + s.cfg.Query + "\n) AS q"
		if all, err = describeQuery(ctx, conn, s.cfg.Query); err != nil {
			return err
		}
	}
	if s.keys, err = findColumns(all, s.cfg.Key, "key", s.what); err != nil {
		return err
	}
	s.all = all
	if w := s.cfg.Cursor; w != nil {
		if s.cursorConds, err = cursorConds(all, s.what, w); err != nil {
			return err
		}
	}
	s.cols = all
	if len(s.cfg.Columns) > 0 {
		if s.cols, err = findColumns(all, s.cfg.Columns, "selected", s.what); err != nil {
			return err
		}
	}
	fields := make([]arrow.Field, len(s.cols))
	sel := make([]string, len(s.cols))
	for i := range s.cols {
		fields[i] = s.cols[i].field()
		sel[i] = quoteIdent(s.cols[i].name)
		if s.cols[i].kind() == kCast {
			sel[i] += "::text"
		}
	}
	s.schema = arrow.NewSchema(fields, nil)
	if s.tableOID != 0 {
		// A PostgreSQL sink creating its table makes these too.
		objs, err := readTableObjects(ctx, conn, s.tableOID, s.cols)
		if err != nil {
			return err
		}
		if s.schema, err = withObjects(s.schema, objs); err != nil {
			return err
		}
	}
	s.selList = strings.Join(sel, ", ")
	if s.cfg.Where != "" {
		// Plan (not run) a query with the filter so a mistake in it fails now.
		if _, err := conn.Exec(ctx, "EXPLAIN SELECT 1 FROM "+s.from+whereClause(nil, s.cfg.Where+"\n")); err != nil {
			return fmt.Errorf("where %q: %w", s.cfg.Where, err)
		}
	}
	return nil
}

// Schema returns the Arrow schema of the selected columns.
func (s *Source) Schema(ctx context.Context) (*arrow.Schema, error) { return s.schema, nil }

// Close releases the idle connections.
func (s *Source) Close() error {
	s.conn.close()
	return nil
}

// selectSQL builds the SELECT of range r in key order.
func (s *Source) selectSQL(r connectors.Range, list string, ordered bool) (string, error) {
	if r.Pages != nil && s.tableOID == 0 {
		return "", errors.New("a query source cannot be read by pages")
	}
	conds, err := rangeConds(s.keys, r)
	if err != nil {
		return "", err
	}
	conds = append(conds, s.cursorConds...)
	q := "SELECT " + list + " FROM " + s.from + whereClause(conds, s.userWhere())
	if ordered && r.Pages == nil {
		q += orderBy(s.keys)
	}
	return q, nil
}

// filtered reports whether reads see fewer rows than the table holds (a
// where, an incremental window), so table-wide statistics do not count them.
func (s *Source) filtered() bool { return s.cfg.Where != "" || len(s.cursorConds) > 0 }

func (s *Source) userWhere() string {
	if s.cfg.Where == "" {
		return ""
	}
	return s.cfg.Where + "\n" // a trailing -- comment must not swallow what follows
}

// Read streams the rows of r in key order through one COPY (SELECT …) TO
// STDOUT (FORMAT binary).
func (s *Source) Read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch) error) error {
	q, err := s.selectSQL(r, s.selList, true)
	if err != nil {
		return fmt.Errorf("postgres source %s, range %s: %w", s.what, r, err)
	}
	dec := newCopyDecoder(s.mem, s.schema, s.cols, s.keys, s.cfg.BatchRows, s.cfg.BatchBytes, fn)
	return s.read(ctx, r, "COPY ("+q+") TO STDOUT (FORMAT binary)", "", dec)
}

// Positioned reports whether ReadPositioned can read r: a range of heap
// pages, the NULL-key range, or the whole of a table without a key. A
// query source has no ctid to read by.
func (s *Source) Positioned(r connectors.Range) bool {
	if s.tableOID == 0 || r.Lo != nil || r.Hi != nil {
		return false
	}
	switch {
	case r.Pages != nil:
		return !r.Nulls
	case r.Nulls:
		return len(s.keys) > 0
	}
	return len(s.keys) == 0
}

// ReadPositioned streams the rows of r in ctid order and gives fn, with
// each batch, the ctid of its last row as Key{block, offset}; r.After is
// such a position and the read continues past it. The ctid travels as a
// trailing COPY field the decoder takes apart, so the batches have the
// source's schema, and the decoder fails the read on any ctid that does
// not follow the one before (see positionedSQL for how the order is had).
func (s *Source) ReadPositioned(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch, connectors.Key) error) error {
	q, settings, err := s.positionedSQL(r)
	if err != nil {
		return fmt.Errorf("postgres source %s, range %s: %w", s.what, r, err)
	}
	var after *tid
	if r.After != nil {
		t, _ := positionTID(r.After) // checked by positionedSQL
		after = &t
	}
	dec := newCopyDecoder(s.mem, s.schema, s.cols, s.keys, s.cfg.BatchRows, s.cfg.BatchBytes, nil).withPositions(after, fn)
	return s.read(ctx, r, "COPY ("+q+") TO STDOUT (FORMAT binary)", settings, dec)
}

// positionedSQL is the SELECT of a positioned read, and the settings it
// runs under (SET LOCAL, in the read's transaction).
//
// ORDER BY ctid would make the planner sort (PostgreSQL 15 puts a Sort over
// a TID Range Scan as over a Seq Scan), so page ranges and keyless tables
// rely on the heap scan's physical order instead: a TID Range Scan or Seq
// Scan reads blocks in order and each block's tuples by line pointer, as
// long as a seq scan starts at block 0 (synchronize_seqscans off) and no
// parallel workers interleave blocks. Index scans (a filter the user wrote
// may match an index) are turned off: they read in index order, and even
// a bitmap heap scan, which visits blocks in order, follows HOT chains
// from their root and so can give a block's line pointers out of order.
// The NULL-key range is small and may be found through the key's index,
// so it is sorted by ctid. Either way the decoder checks.
func (s *Source) positionedSQL(r connectors.Range) (q, settings string, err error) {
	if !s.Positioned(r) {
		if s.tableOID == 0 {
			return "", "", errors.New("a query source has no row positions (ctid) to read by")
		}
		return "", "", errors.New("the range is read by key, not by position")
	}
	q, err = s.selectSQL(r, s.selList+", ctid", false)
	if err != nil {
		return "", "", err
	}
	settings = "SET LOCAL synchronize_seqscans = off; SET LOCAL max_parallel_workers_per_gather = 0"
	if r.Nulls {
		return q + " ORDER BY ctid", settings, nil
	}
	return q, settings + "; SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off", nil
}

// read runs a COPY … TO STDOUT into dec and hands on what fn returned.
func (s *Source) read(ctx context.Context, r connectors.Range, sql, settings string, dec *copyDecoder) error {
	defer dec.release()
	err := s.copyOut(ctx, sql, settings, dec)
	if dec.emitErr != nil {
		return dec.emitErr // fn's own error, unchanged
	}
	if err == nil && !dec.done {
		err = errors.New("COPY stream ended without its trailer")
	}
	if err == nil {
		err = dec.flush()
		if dec.emitErr != nil {
			return dec.emitErr
		}
	}
	if err != nil {
		return s.conn.redact(classify(fmt.Errorf("postgres source %s, range %s: %w", s.what, r, err)))
	}
	return nil
}

// copyOut runs one COPY … TO STDOUT into w, in a transaction when the
// source has an exported snapshot to import or settings are given (SET
// LOCAL statements, undone when it ends).
func (s *Source) copyOut(ctx context.Context, sql, settings string, w interface{ Write([]byte) (int, error) }) error {
	conn, err := s.conn.get(ctx)
	if err != nil {
		return err
	}
	if err := s.begin(ctx, conn, settings); err != nil {
		s.conn.discard(conn)
		return err
	}
	if _, err := conn.PgConn().CopyTo(ctx, w, sql); err != nil {
		// A Write error makes pgconn close the connection; a server error
		// leaves it usable but maybe in a failed transaction. put sorts
		// both out.
		if s.inTx(settings) && !conn.IsClosed() {
			_, _ = conn.Exec(context.Background(), "ROLLBACK")
		}
		s.conn.put(conn)
		return err
	}
	if err := s.end(ctx, conn, settings); err != nil {
		s.conn.discard(conn)
		return err
	}
	s.conn.put(conn)
	return nil
}

func (s *Source) inTx(settings string) bool { return s.cfg.Snapshot != "" || settings != "" }

// begin opens the read's transaction, if it needs one: importing the
// snapshot when the source has one, then applying settings.
func (s *Source) begin(ctx context.Context, conn *pgx.Conn, settings string) error {
	if !s.inTx(settings) {
		return nil
	}
	if s.cfg.Snapshot != "" {
		_, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '"+s.cfg.Snapshot+"'")
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "22023" && strings.Contains(pgErr.Message, "snapshot") {
			return fmt.Errorf("import snapshot %s: %w (%v)", s.cfg.Snapshot, connectors.ErrSnapshotGone, err)
		}
		if err != nil {
			return fmt.Errorf("import snapshot %s: %w", s.cfg.Snapshot, err)
		}
	} else if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	if settings != "" {
		if _, err := conn.Exec(ctx, settings); err != nil {
			return fmt.Errorf("%s: %w", settings, err)
		}
	}
	return nil
}

func (s *Source) end(ctx context.Context, conn *pgx.Conn, settings string) error {
	if !s.inTx(settings) {
		return nil
	}
	_, err := conn.Exec(ctx, "COMMIT")
	return err
}

// Count returns the number of rows of r, with the same predicates as Read.
func (s *Source) Count(ctx context.Context, r connectors.Range) (int64, error) {
	q, err := s.selectSQL(r, "count(*)", false)
	if err != nil {
		return 0, fmt.Errorf("postgres source %s, range %s: %w", s.what, r, err)
	}
	conn, err := s.conn.get(ctx)
	if err != nil {
		return 0, s.conn.redact(err)
	}
	var n int64
	if err = s.begin(ctx, conn, ""); err == nil {
		if err = conn.QueryRow(ctx, q).Scan(&n); err == nil {
			err = s.end(ctx, conn, "")
		}
	}
	if err != nil {
		s.conn.discard(conn)
		return 0, s.conn.redact(classify(fmt.Errorf("postgres source %s: count %s: %w", s.what, r, err)))
	}
	s.conn.put(conn)
	return n, nil
}

// PrimaryKey names the columns of the table's primary key in key order;
// none for a query or a table without one.
func (s *Source) PrimaryKey(ctx context.Context) ([]string, error) {
	if s.tableOID == 0 {
		return nil, nil
	}
	conn, err := s.conn.get(ctx)
	if err != nil {
		return nil, s.conn.redact(err)
	}
	rows, err := conn.Query(ctx, `SELECT a.attname FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.n`, s.tableOID)
	var key []string
	if err == nil {
		key, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		s.conn.discard(conn)
		return nil, s.conn.redact(classify(fmt.Errorf("postgres source %s: primary key: %w", s.what, err)))
	}
	s.conn.put(conn)
	return key, nil
}

// ExportSnapshot opens a connection, starts a REPEATABLE READ transaction and
// exports its snapshot; sources opened with SourceConfig.Snapshot set to the
// id read exactly what that transaction sees. The snapshot (and connection)
// lives until release is called.
func (s *Source) ExportSnapshot(ctx context.Context) (string, func(), error) {
	conn, err := pgx.ConnectConfig(ctx, s.conn.cfg.Copy())
	if err != nil {
		return "", nil, s.conn.redact(classify(fmt.Errorf("postgres source %s: export snapshot: connect to %s: %w", s.what, s.conn.dsn, err)))
	}
	var id string
	_, err = conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ")
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id)
	}
	if err != nil {
		_ = conn.Close(context.Background())
		return "", nil, s.conn.redact(classify(fmt.Errorf("postgres source %s: export snapshot: %w", s.what, err)))
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			_, _ = conn.Exec(context.Background(), "COMMIT")
			_ = conn.Close(context.Background())
		})
	}
	return id, release, nil
}
