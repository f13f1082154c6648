// Package zkstore is the store.Store backend on a real ZooKeeper ensemble,
// over github.com/go-zookeeper/zk.
//
// One Store is one ZooKeeper session under a chroot. When the session
// expires, the Store reports Expired, the zk client opens a new session by
// itself, and the Store reports Connected with the new ID; the caller
// re-creates its ephemeral nodes and watches. Brief disconnections within the
// session timeout are invisible except as Disconnected/Connected events and
// ErrConnectionLoss from calls made meanwhile: watches survive them.
package zkstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/internal/fanout"
)

// Config says where and how to connect.
type Config struct {
	// Servers are host:port addresses of the ensemble.
	Servers []string
	// Root is the chroot every path lives under; created if missing.
	// Empty means store.DefaultRoot; "/" means no chroot.
	Root string
	// SessionTimeout is how long the server keeps the session (and its
	// ephemeral nodes) after it last heard from us; the server clamps it to
	// its own bounds. Default 10s.
	SessionTimeout time.Duration
	// ConnectTimeout bounds how long Open waits for the first session, on
	// top of ctx. Default 15s.
	ConnectTimeout time.Duration
	// Logger receives session changes (Info/Warn) and the zk client's own
	// messages (Debug). Nil discards everything.
	Logger *slog.Logger
	// Dialer replaces net.DialTimeout, for tunnels and tests.
	Dialer func(network, address string, timeout time.Duration) (net.Conn, error)
}

// Store is a store.Store on ZooKeeper. Safe for concurrent use.
type Store struct {
	conn *zk.Conn
	root string // "" when there is no chroot
	log  *slog.Logger

	connReady chan struct{} // closed once conn is set; the event callback waits for it
	dial      func(network, address string, timeout time.Duration) (net.Conn, error)
	timeout   time.Duration // session timeout asked for

	mu        sync.Mutex
	state     store.SessionState
	sessionID int64
	creds     creds // of the latest session, for Expire
	closed    bool
	events    *fanout.Fanout[store.SessionEvent]
}

var _ store.Store = (*Store)(nil)

// Open connects, waits for a session and creates the root if missing.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("zkstore: no servers: %w", store.ErrBadArguments)
	}
	root := cfg.Root
	if root == "" {
		root = store.DefaultRoot
	}
	if err := store.ValidatePath(root, false); err != nil {
		return nil, fmt.Errorf("zkstore: root: %w", err)
	}
	if root == "/" {
		root = ""
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		root:      root,
		log:       log,
		connReady: make(chan struct{}),
		timeout:   cfg.SessionTimeout,
		events:    fanout.New[store.SessionEvent](),
	}
	s.dial = cfg.Dialer
	if s.dial == nil {
		s.dial = net.DialTimeout
	}
	conn, _, err := zk.Connect(cfg.Servers, cfg.SessionTimeout,
		zk.WithLogger(zkLogger{log}),
		// The client logs every connect and reconnect at "info"; without
		// this a flapping network fills the log. Errors still reach Debug.
		zk.WithLogInfo(false),
		zk.WithEventCallback(s.onEvent),
		zk.WithDialer(s.dialer(s.dial)),
	)
	if err != nil {
		return nil, fmt.Errorf("zkstore: connect %v: %w", cfg.Servers, err)
	}
	s.conn = conn
	close(s.connReady)

	if err := s.waitSession(ctx, cfg.ConnectTimeout); err != nil {
		s.Close()
		return nil, fmt.Errorf("zkstore: connect %v: %w", cfg.Servers, err)
	}
	if root != "" {
		if _, err := run(ctx, s, func() (struct{}, error) { return struct{}{}, createRoot(conn, root) }); err != nil {
			s.Close()
			return nil, fmt.Errorf("zkstore: create root %s: %w", root, s.mapErr(err))
		}
	}
	return s, nil
}

// createRoot creates root and its missing ancestors, outside the chroot.
func createRoot(conn *zk.Conn, root string) error {
	p := ""
	for _, seg := range strings.Split(root[1:], "/") {
		p += "/" + seg
		if _, err := conn.Create(p, nil, 0, openACL); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}

func (s *Store) waitSession(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	events := s.SessionEvents(ctx)
	for ev := range events {
		if ev.State == store.Connected {
			return nil
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("no session: %w", err)
	}
	return store.ErrClosed
}

// onEvent turns the zk client's state changes into session events. It runs
// on the client's goroutine, so it must not block.
func (s *Store) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	<-s.connReady
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		id := s.conn.SessionID()
		if s.state == store.Connected && id == s.sessionID {
			return
		}
		s.state, s.sessionID = store.Connected, id
		s.log.Info("zookeeper session established", "session", fmt.Sprintf("0x%x", id), "server", ev.Server)
		s.events.Publish(store.SessionEvent{State: store.Connected, SessionID: id})
	case zk.StateDisconnected:
		// The client also passes through Disconnected while looking for a
		// server; only the loss of a working connection is news.
		if s.state != store.Connected {
			return
		}
		s.state = store.Disconnected
		s.log.Warn("zookeeper connection lost", "session", fmt.Sprintf("0x%x", s.sessionID), "server", ev.Server)
		s.events.Publish(store.SessionEvent{State: store.Disconnected, SessionID: s.sessionID})
	case zk.StateExpired:
		s.state = store.Expired
		s.log.Warn("zookeeper session expired; ephemeral nodes are gone, opening a new session", "session", fmt.Sprintf("0x%x", s.sessionID))
		s.events.Publish(store.SessionEvent{State: store.Expired, SessionID: s.sessionID})
	}
}

// SessionEvents implements store.Store.
func (s *Store) SessionEvents(ctx context.Context) <-chan store.SessionEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := store.SessionEvent{State: s.state, SessionID: s.sessionID}
	if s.closed {
		first.State = store.Closed
	} else if s.state == 0 {
		first.State = store.Disconnected // still looking for the first server
	}
	return s.events.Subscribe(ctx, first)
}

// Close ends the session: the server deletes its ephemeral nodes at once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	id := s.sessionID
	s.mu.Unlock()

	s.conn.Close()

	s.mu.Lock()
	s.state = store.Closed
	s.events.Publish(store.SessionEvent{State: store.Closed, SessionID: id})
	s.events.Close()
	s.mu.Unlock()
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("zk: " + fmt.Sprintf(format, args...))
}

// abs maps a store path to the server's path under the chroot.
func (s *Store) abs(p string) string {
	if s.root == "" {
		return p
	}
	if p == "/" {
		return s.root
	}
	return s.root + p
}

// absCreate is abs for a Create: a sequential create at "/" names a child
// of the root, so under a chroot it must not become a sibling of the root.
func (s *Store) absCreate(p string, flags store.Flags) string {
	if p == "/" && flags&store.Sequential != 0 && s.root != "" {
		return s.root + "/"
	}
	return s.abs(p)
}

// rel maps a server path back under the chroot.
func (s *Store) rel(p string) string {
	if s.root == "" {
		return p
	}
	p = strings.TrimPrefix(p, s.root)
	if p == "" {
		return "/"
	}
	return p
}
