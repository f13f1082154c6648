package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/datashift/datashift/connectors"
)

// queryCounter counts what a source sends the server: connections opened
// and statements run (queries, execs, prepares). It wraps the driver, so
// it sees every statement however the source issues it (database/sql or a
// raw driver connection), and nothing any other test sends the server.
type queryCounter struct {
	conns, queries atomic.Int64
}

// countedSource opens a source for cfg whose pool goes through a counter.
func countedSource(t testing.TB, cfg connectors.SourceConfig) (*source, *queryCounter) {
	t.Helper()
	mcfg, err := parseDSN(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	base, err := mysql.NewConnector(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	qc := &queryCounter{}
	db := sql.OpenDB(&countConnector{Connector: base, qc: qc})
	s, err := newSource(testCtx(t), db, mcfg.DBName, cfg)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, qc
}

// reset zeroes the counts (after opening, to count planning alone).
func (q *queryCounter) reset() { q.conns.Store(0); q.queries.Store(0) }

type countConnector struct {
	driver.Connector
	qc *queryCounter
}

func (c *countConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	c.qc.conns.Add(1)
	return &countConn{Conn: conn, qc: c.qc}, nil
}

// countConn passes every optional interface the mysql driver's connection
// has on to it, counting statements on the way.
type countConn struct {
	driver.Conn
	qc *queryCounter
}

func (c *countConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.qc.queries.Add(1)
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *countConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.qc.queries.Add(1)
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *countConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.qc.queries.Add(1)
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *countConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *countConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *countConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *countConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c *countConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}
