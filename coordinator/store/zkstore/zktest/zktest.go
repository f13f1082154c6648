// Package zktest gives tests a ZooKeeper root of their own on the server
// internal/testenv points at, and removes it, root included, when the test
// ends. (A store cannot delete its own root: DeleteAll(s, "/") empties it
// but leaves the root node behind.)
package zktest

import (
	"context"
	"testing"
	"time"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/zkstore"
	"github.com/datashift/datashift/internal/testenv"
)

// SessionTimeout is short so a session a failed test leaves open goes
// quickly; tests that need expiry call Store.Expire rather than wait.
const SessionTimeout = 4 * time.Second

// Root returns the servers and a fresh root path. The root is created by the
// first Open on it and deleted with everything under it at cleanup. Skips or
// fails t as testenv does when ZooKeeper is not reachable.
func Root(t testing.TB) (servers []string, root string) {
	t.Helper()
	servers, root = testenv.ZooKeeper(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: "/", SessionTimeout: SessionTimeout})
		if err != nil {
			t.Errorf("zktest: cleanup of %s: %v", root, err)
			return
		}
		defer admin.Close()
		if err := store.DeleteAll(ctx, admin, root); err != nil {
			t.Errorf("zktest: cleanup of %s: %v", root, err)
		}
	})
	return servers, root
}

// Open opens a store with cfg, SessionTimeout defaulting to SessionTimeout,
// and closes it at cleanup (before the root's cleanup, as cleanups run last
// registered first).
func Open(t testing.TB, cfg zkstore.Config) *zkstore.Store {
	t.Helper()
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = SessionTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := zkstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
