package zkstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/datashift/datashift/coordinator/store"
)

// Expiring a session on purpose is how failover is rehearsed against a real
// server. ZooKeeper has no "expire this session" command, but a session is
// closed by whoever holds its ID and password: the usual trick is a second
// connection that attaches to the session and closes it, which deletes the
// ephemeral nodes at once and makes the server turn the first client away as
// expired. The zk client keeps the password to itself, so every connection
// passes through credConn, which reads it from the server's handshake reply.

var _ store.Expirer = (*Store)(nil)

type creds struct {
	addr   string
	id     int64
	passwd []byte
}

// dialer wraps dial so each connection reports the session it gets.
func (s *Store) dialer(dial func(string, string, time.Duration) (net.Conn, error)) func(string, string, time.Duration) (net.Conn, error) {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c, err := dial(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		return &credConn{Conn: c, addr: addr, s: s}, nil
	}
}

// credConn parses the first frame the server sends, the connect response:
// int32 length, int32 protocol version, int32 timeout, int64 session ID,
// int32 password length, password. After that it only passes bytes on. The
// zk client reads a connection from one goroutine at a time, so no lock.
type credConn struct {
	net.Conn
	addr string
	s    *Store
	done bool
	buf  []byte
}

func (c *credConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done && n > 0 {
		c.buf = append(c.buf, p[:n]...)
		c.parse()
	}
	return n, err
}

func (c *credConn) parse() {
	if len(c.buf) < 4 {
		return
	}
	size := int(binary.BigEndian.Uint32(c.buf))
	if len(c.buf) < 4+size {
		return
	}
	body := c.buf[4 : 4+size]
	c.done, c.buf = true, nil
	if len(body) < 20 {
		return
	}
	id := int64(binary.BigEndian.Uint64(body[8:]))
	pwLen := int(int32(binary.BigEndian.Uint32(body[16:])))
	if id == 0 || pwLen < 0 || 20+pwLen > len(body) {
		return // expired, or not a reply we understand
	}
	cr := creds{addr: c.addr, id: id, passwd: append([]byte(nil), body[20:20+pwLen]...)}
	c.s.mu.Lock()
	c.s.creds = cr
	c.s.mu.Unlock()
}

// Expire ends the current session as the server does after the session
// timeout, and returns once the Store is on a new session: Expired and
// Connected have been reported, the old session's ephemeral nodes are gone
// and its watches have fired with EventSessionLost.
func (s *Store) Expire(ctx context.Context) error {
	s.mu.Lock()
	closed, state, id, cr := s.closed, s.state, s.sessionID, s.creds
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("zkstore: expire: %w", store.ErrClosed)
	}
	if state != store.Connected || cr.id != id {
		return fmt.Errorf("zkstore: expire: no live session: %w", store.ErrConnectionLoss)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := s.SessionEvents(ctx)
	if err := closeSession(ctx, s.dial, cr, s.timeout); err != nil {
		return fmt.Errorf("zkstore: expire session 0x%x: %w", id, err)
	}
	expired := false
	for ev := range events {
		switch {
		case ev.State == store.Expired && ev.SessionID == id:
			expired = true
		case ev.State == store.Connected && ev.SessionID != id && expired:
			return nil
		case ev.State == store.Closed:
			return fmt.Errorf("zkstore: expire: %w", store.ErrClosed)
		}
	}
	return fmt.Errorf("zkstore: expire session 0x%x: waiting for a new session: %w", id, ctx.Err())
}

// closeSession attaches to the session from a new connection and closes it.
func closeSession(ctx context.Context, dial func(string, string, time.Duration) (net.Conn, error), cr creds, timeout time.Duration) error {
	conn, err := dial("tcp", cr.addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	be := binary.BigEndian
	// Connect request: protocol version, last zxid seen, timeout, session
	// ID, password, read-only flag.
	req := be.AppendUint32(nil, 0)
	req = be.AppendUint64(req, 0)
	req = be.AppendUint32(req, uint32(timeout.Milliseconds()))
	req = be.AppendUint64(req, uint64(cr.id))
	req = be.AppendUint32(req, uint32(len(cr.passwd)))
	req = append(req, cr.passwd...)
	req = append(req, 0)
	if err := writeFrame(conn, req); err != nil {
		return err
	}
	resp, err := readFrame(conn)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if len(resp) < 16 {
		return errors.New("attach: short reply")
	}
	if be.Uint64(resp[8:]) == 0 {
		return nil // already expired: nothing to do
	}
	// Close request: xid, opcode -11 (closeSession).
	closeReq := be.AppendUint32(nil, 1)
	closeReq = be.AppendUint32(closeReq, uint32(0xFFFFFFF5))
	if err := writeFrame(conn, closeReq); err != nil {
		return err
	}
	// The reply header is xid, zxid, error code.
	resp, err = readFrame(conn)
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if len(resp) >= 16 {
		if code := int32(be.Uint32(resp[12:])); code != 0 {
			return fmt.Errorf("close: server error %d", code)
		}
	}
	return nil
}

func writeFrame(w io.Writer, body []byte) error {
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	_, err := w.Write(append(frame, body...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 1<<20 {
		return nil, fmt.Errorf("reply of %d bytes", n)
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}
