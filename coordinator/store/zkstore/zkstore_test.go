package zkstore_test

import (
	"bytes"
	"context"
	"errors"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/storetest"
	"github.com/datashift/datashift/coordinator/store/zkstore"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/internal/testenv"
)

func open(t *testing.T, cfg zkstore.Config) *zkstore.Store { return zktest.Open(t, cfg) }

func freshRoot(t *testing.T) ([]string, string) { return zktest.Root(t) }

func TestConformance(t *testing.T) {
	testenv.Need(t, "ZooKeeper", testenv.ZooKeeperAddr())
	type tree struct {
		servers []string
		root    string
	}
	var (
		mu    sync.Mutex
		trees = map[*testing.T]tree{}
	)
	newStore := func(t *testing.T) store.Store {
		mu.Lock()
		tr, ok := trees[t]
		if !ok {
			tr.servers, tr.root = freshRoot(t)
			trees[t] = tr
		}
		mu.Unlock()
		return open(t, zkstore.Config{Servers: tr.servers, Root: tr.root})
	}
	expire := func(t *testing.T, s store.Store) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := s.(store.Expirer).Expire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	storetest.Run(t, newStore, expire)
}

func TestRootIsCreatedAndPathsAreRelative(t *testing.T) {
	servers, root := freshRoot(t)
	ctx := t.Context()
	deep := root + "/cluster/a"
	s := open(t, zkstore.Config{Servers: servers, Root: deep})
	admin := open(t, zkstore.Config{Servers: servers, Root: "/"})

	if ok, _, err := admin.Exists(ctx, deep); err != nil || !ok {
		t.Fatalf("root %s not created: %v %v", deep, ok, err)
	}
	made, err := s.Create(ctx, "/q-", []byte("x"), store.Sequential)
	if err != nil {
		t.Fatal(err)
	}
	if made != "/q-0000000000" {
		t.Fatalf("Create returned %q, want a path inside the chroot", made)
	}
	data, _, err := admin.Get(ctx, deep+made)
	if err != nil || string(data) != "x" {
		t.Fatalf("node not under the chroot on the server: %q %v", data, err)
	}
	kids, err := s.Children(ctx, "/")
	if err != nil || len(kids) != 1 || kids[0] != "q-0000000000" {
		t.Fatalf("Children(/) = %v %v", kids, err)
	}
	// A store on an existing root opens fine, and sees the same tree.
	again := open(t, zkstore.Config{Servers: servers, Root: deep})
	if ok, _, err := again.Exists(ctx, made); err != nil || !ok {
		t.Fatalf("second store on the root: %v %v", ok, err)
	}
}

func TestOpenUnreachableFailsClearly(t *testing.T) {
	// A port nothing listens on: reserve one and let it go.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = zkstore.Open(t.Context(), zkstore.Config{Servers: []string{addr}, ConnectTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), addr) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open of %s: %v; want a deadline error naming the address", addr, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Open took %v with a 1s connect timeout", took)
	}
	if _, err := zkstore.Open(t.Context(), zkstore.Config{}); !errors.Is(err, store.ErrBadArguments) {
		t.Fatalf("Open without servers: %v", err)
	}
}

// The zk client logs through the standard logger unless told otherwise;
// none of it may reach there, while our own logger hears about the session.
func TestLogsGoToTheGivenLogger(t *testing.T) {
	servers, root := freshRoot(t)
	var std bytes.Buffer
	defer log.SetOutput(log.Writer())
	log.SetOutput(&std)

	var mu sync.Mutex
	var ours bytes.Buffer
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &ours}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := open(t, zkstore.Config{Servers: servers, Root: root, Logger: logger})
	if err := s.Expire(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if std.Len() > 0 {
		t.Fatalf("the standard logger got:\n%s", std.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"session established", "session expired"} {
		if !strings.Contains(ours.String(), want) {
			t.Errorf("our logger did not hear %q; it got:\n%s", want, ours.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// cutter is a dialer whose connections the test can cut, as a network
// blip would.
type cutter struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *cutter) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// A connection lost and regained within the session timeout keeps the
// session: ephemeral nodes stay, watches still fire, and the events say
// disconnected then connected with the same ID.
func TestDisconnectKeepsSession(t *testing.T) {
	servers, root := freshRoot(t)
	ctx := t.Context()
	c := &cutter{}
	s := open(t, zkstore.Config{Servers: servers, Root: root, Dialer: c.dial, SessionTimeout: 8 * time.Second})
	other := open(t, zkstore.Config{Servers: servers, Root: root})
	events := s.SessionEvents(ctx)
	first := <-events

	if _, err := s.Create(ctx, "/eph", nil, store.Ephemeral); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create(ctx, "/data", nil, 0); err != nil {
		t.Fatal(err)
	}
	_, _, watch, err := s.GetW(ctx, "/data")
	if err != nil {
		t.Fatal(err)
	}
	c.cut()
	want := []store.SessionEvent{
		{State: store.Disconnected, SessionID: first.SessionID},
		{State: store.Connected, SessionID: first.SessionID},
	}
	for _, w := range want {
		select {
		case ev := <-events:
			if ev != w {
				t.Fatalf("session event %+v, want %+v", ev, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v event", w.State)
		}
	}
	if _, err := other.Set(ctx, "/data", []byte("new"), store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-watch:
		if ev.Type != store.EventDataChanged {
			t.Fatalf("watch after reconnect: %+v, want data changed", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch set before the disconnect did not fire")
	}
	if ok, _, _ := other.Exists(ctx, "/eph"); !ok {
		t.Fatal("ephemeral node lost in a disconnect shorter than the session timeout")
	}
}
