// Package mysql is the MariaDB/MySQL connector (type "mysql"), built on
// go-sql-driver/mysql and tested on MariaDB 10.11.
//
// Reading streams one SELECT per range over the text protocol and parses the
// driver's raw values straight into Arrow builders. Writing streams
// tab-separated rows into LOAD DATA LOCAL INFILE through a registered reader,
// one transaction per commit, and falls back to multi-row INSERTs when the
// server or client refuses LOCAL INFILE. Each commit's transaction also
// updates the partition's commit record, fenced by its lease
// (connectors/COMMITS.md, commits.go).
//
// Options: the source takes none; the sink takes bulk=auto (default: LOAD DATA
// LOCAL, INSERTs if refused), bulk=load_data (fail if refused) or bulk=insert,
// and commit_table (default datashift_commits, in the target table's
// database; db.table puts it elsewhere).
//
// Key order is byte order (connectors/TYPES.md): text key columns whose
// collation is not already byte order are compared and sorted as
// CAST(col AS BINARY), which costs the index for those columns; integer,
// temporal and binary keys keep using it.
package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/datashift/datashift/connectors"
)

// TypeName is the name the connector registers under.
const TypeName = "mysql"

func init() {
	connectors.RegisterSource(TypeName, openSource, sourceOptions...)
	connectors.RegisterSink(TypeName, openSink, sinkOptions...)
}

// The options each side takes (connectors/REFERENCE.md).
var (
	sourceOptions = connectors.Options{}
	sinkOptions   = connectors.Options{
		{Name: "bulk", Doc: "`auto` (default: LOAD DATA LOCAL INFILE, multi-row INSERTs if the server or client refuses it), `load_data` (fail if refused) or `insert`"},
		{Name: "commit_table", Doc: "the commit record table (default `datashift_commits` in the target table's database; `db.table` puts it elsewhere)"},
	}
)

// sessionSQLMode makes truncation an error for plain INSERTs, keeps an explicit
// 0 in an AUTO_INCREMENT column (a copy must not renumber rows) and leaves
// backslash escapes on, which the TSV and SQL encoders rely on.
const sessionSQLMode = "'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"

// parseDSN parses a go-sql-driver DSN and forces the settings correctness
// depends on, whatever the DSN says.
func parseDSN(dsn string) (*mysql.Config, error) {
	if dsn == "" {
		return nil, errors.New("DSN is empty (want user:pass@tcp(host:port)/db)")
	}
	if err := connectors.CheckDSN(dsn); err != nil {
		return nil, fmt.Errorf("DSN %s: %w", connectors.Redacted(dsn), err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's parse errors do not quote the DSN, so none leaks here.
		return nil, fmt.Errorf("DSN %s: %w", connectors.Redacted(dsn), err)
	}
	if cfg.DBName == "" {
		return nil, fmt.Errorf("DSN %s names no database", connectors.Redacted(dsn))
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// Interpolation keeps every statement on the text protocol: one round
	// trip, and raw []byte values the reader parses itself.
	cfg.InterpolateParams = true
	cfg.AllowAllFiles = false
	cfg.MultiStatements = false
	cfg.ClientFoundRows = false
	cfg.ColumnsWithAlias = false // column names must be the bare names
	if err := cfg.Apply(mysql.Charset("utf8mb4", "")); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Params["sql_mode"] = sessionSQLMode
	// A reader that waits on a slow sink, or a LOAD DATA that waits on a slow
	// source, must not be cut off by the server's 30/60 s defaults.
	cfg.Params["net_read_timeout"] = "3600"
	cfg.Params["net_write_timeout"] = "3600"
	return cfg, nil
}

// openDB opens a pool on a parsed config and checks the server answers.
func openDB(ctx context.Context, dsn string) (*sql.DB, *mysql.Config, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, nil, err
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("DSN %s: %w", connectors.Redacted(dsn), err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, classify(fmt.Errorf("connect to %s: %w", connectors.Redacted(dsn), err))
	}
	return db, cfg, nil
}

// quoteIdent quotes one identifier with backticks.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// splitTable splits "db.table" into its parts; a bare name lives in def.
func splitTable(name, def string) (schema, table string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return def, name
}

// Server error numbers that say the server has no room for another
// connection now.
var busyCodes = map[uint16]bool{
	1040: true, // too many connections
	1203: true, // the user's max_user_connections
}

// Server error numbers that say the same statement may succeed later.
var transientCodes = map[uint16]bool{
	1053: true, // server shutdown in progress
	1205: true, // lock wait timeout
	1213: true, // deadlock
	1927: true, // connection was killed (MariaDB)
	2006: true, // server has gone away
	2013: true, // lost connection
	1317: true, // query interrupted (server restart)
	4031: true, // client disconnected for inactivity (MariaDB)
}

// classify marks connection-level failures as transient.
func classify(err error) error {
	if err == nil || connectors.IsTransient(err) {
		return err
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		if busyCodes[me.Number] {
			return connectors.Busy(err)
		}
		if transientCodes[me.Number] {
			return connectors.Transient(err)
		}
		return err
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, sql.ErrConnDone) {
		return connectors.Transient(err)
	}
	return err
}
