package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// readBufferSize is the socket read buffer under pgproto3's 8 KiB chunk
// reader. A COPY … TO STDOUT sends one small CopyData message per row; with
// only 8 KiB per read(2) the source side spent about a tenth of datashift's
// CPU in socket reads. A large buffer drains what the server has sent in one
// call.
const readBufferSize = 256 << 10

// newFrontend is pgproto3.NewFrontend reading through a large buffer.
func newFrontend(r io.Reader, w io.Writer) *pgproto3.Frontend {
	return pgproto3.NewFrontend(bufio.NewReaderSize(r, readBufferSize), w)
}

// redactedError hides a password that a driver or server message might echo
// (pgx quotes connection strings in some parse errors). It keeps the chain for
// errors.As/Is.
type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx")
}
func (e *redactedError) Unwrap() error { return e.err }

// connector is what the source and the sink share: the parsed configuration,
// a small pool of idle connections and the password to scrub from errors.
type connector struct {
	dsn    string // redacted, for messages
	secret string
	cfg    *pgx.ConnConfig

	mu     sync.Mutex
	idle   []idleConn
	closed bool
}

// idleConn is a connection given back, and when.
type idleConn struct {
	conn  *pgx.Conn
	since time.Time
}

// pingAfter is how long a connection may sit idle before it is checked on
// its way out: the server may have ended it meanwhile (a restart,
// idle_session_timeout, an administrator), which would otherwise cost the
// next partition an attempt. A partition that starts right after another
// ended takes its connection unchecked.
const pingAfter = time.Second

func newConnector(dsn string) (*connector, error) {
	if dsn == "" {
		return nil, errors.New("postgres: DSN is empty")
	}
	// A mistyped password would be split by the driver, and its errors
	// would quote the part it took for the host.
	if err := connectors.CheckDSN(dsn); err != nil {
		return nil, fmt.Errorf("postgres: invalid DSN %s: %w", connectors.Redacted(dsn), err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN; only the redacted one goes out.
		return nil, fmt.Errorf("postgres: invalid DSN %s: %s", connectors.Redacted(dsn), connectors.Redacted(err.Error()))
	}
	cfg.BuildFrontend = newFrontend
	rp := cfg.RuntimeParams
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "datashift"
	}
	// Text produced by casts (col::text for types without a binary decoder)
	// must not depend on the server's or the user's settings.
	rp["timezone"] = "UTC"
	rp["datestyle"] = "ISO, YMD"
	rp["intervalstyle"] = "postgres"
	rp["client_encoding"] = "UTF8"
	c := &connector{dsn: connectors.Redacted(dsn), cfg: cfg}
	if len(cfg.Password) >= 3 { // shorter ones would garble messages
		c.secret = cfg.Password
	}
	return c, nil
}

// redact removes the password from err's message, keeping its chain.
func (c *connector) redact(err error) error {
	if err == nil || c == nil || c.secret == "" || !strings.Contains(err.Error(), c.secret) {
		return err
	}
	return &redactedError{err: err, secret: c.secret}
}

// get returns an idle connection or opens one.
func (c *connector) get(ctx context.Context) (*pgx.Conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("postgres: connector is closed")
	}
	for len(c.idle) > 0 {
		ic := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if ic.conn.IsClosed() {
			continue
		}
		c.mu.Unlock()
		if time.Since(ic.since) < pingAfter || ic.conn.Ping(ctx) == nil {
			return ic.conn, nil
		}
		_ = ic.conn.Close(context.Background())
		c.mu.Lock()
	}
	c.mu.Unlock()
	conn, err := pgx.ConnectConfig(ctx, c.cfg.Copy())
	if err != nil {
		return nil, classify(fmt.Errorf("connect to %s: %w", c.dsn, err))
	}
	return conn, nil
}

// put gives a connection back. One that is broken, closed or still inside a
// transaction (a failed read) is closed instead of reused.
func (c *connector) put(conn *pgx.Conn) {
	if conn == nil {
		return
	}
	if conn.IsClosed() || conn.PgConn().TxStatus() != 'I' {
		_ = conn.Close(context.Background())
		return
	}
	c.mu.Lock()
	if c.closed || len(c.idle) >= 4 {
		c.mu.Unlock()
		_ = conn.Close(context.Background())
		return
	}
	c.idle = append(c.idle, idleConn{conn: conn, since: time.Now()})
	c.mu.Unlock()
}

// discard closes a connection whose state is unknown (an error mid-statement).
func (c *connector) discard(conn *pgx.Conn) {
	if conn != nil {
		_ = conn.Close(context.Background())
	}
}

func (c *connector) close() {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	for _, ic := range idle {
		_ = ic.conn.Close(context.Background())
	}
}

// classify marks the errors after which retrying the same work from a
// checkpoint may succeed: the server going away, a dropped or refused
// connection, a serialization failure or deadlock. A server error about the
// statement itself (syntax, missing column, constraint) is not retryable and
// is returned as is, and so is a cancelled context.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var te *connectors.TransientError
	var ve *connectors.ValueError
	if errors.As(err, &te) || errors.As(err, &ve) || connectors.IsBusy(err) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "53300": // too many connections
			return connectors.Busy(err)
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, crash, starting
			pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
			return connectors.Transient(err)
		}
		return err
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) || connectors.IsTransient(err) || isConnClosed(err) {
		return connectors.Transient(err)
	}
	return err
}

// isConnClosed recognises pgconn's messages for a connection it closed after
// a network failure; they do not always wrap the net error.
func isConnClosed(err error) bool {
	s := err.Error()
	return strings.Contains(s, "conn closed") || strings.Contains(s, "unexpected EOF") ||
		strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe")
}

// quoteIdent quotes one identifier.
func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// parseTableName splits a possibly schema-qualified, possibly quoted table
// name ("orders", "public.orders", `"My Schema"."Orders"`) into its parts.
func parseTableName(s string) (pgx.Identifier, error) {
	var parts pgx.Identifier
	i := 0
	for {
		if i >= len(s) {
			return nil, fmt.Errorf("invalid table name %q", s)
		}
		var part string
		if s[i] == '"' {
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("invalid table name %q: unterminated quote", s)
				}
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			part, i = b.String(), j+1
		} else {
			j := strings.IndexByte(s[i:], '.')
			if j < 0 {
				j = len(s) - i
			}
			// Unquoted names fold to lower case, as in SQL.
			part, i = strings.ToLower(strings.TrimSpace(s[i:i+j])), i+j
		}
		if part == "" {
			return nil, fmt.Errorf("invalid table name %q", s)
		}
		parts = append(parts, part)
		if i == len(s) {
			break
		}
		if s[i] != '.' {
			return nil, fmt.Errorf("invalid table name %q", s)
		}
		i++
	}
	if len(parts) > 2 {
		return nil, fmt.Errorf("invalid table name %q: want table or schema.table", s)
	}
	return parts, nil
}
