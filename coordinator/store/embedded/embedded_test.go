package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/storetest"
)

// dbs gives each test its own DB, shared by the sessions it opens.
type dbs struct {
	mu   sync.Mutex
	byT  map[*testing.T]*DB
	open func(t *testing.T) *DB
}

func (d *dbs) newStore(t *testing.T) store.Store {
	d.mu.Lock()
	db, ok := d.byT[t]
	if !ok {
		db = d.open(t)
		d.byT[t] = db
	}
	d.mu.Unlock()
	s, err := db.Session()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func expire(t *testing.T, s store.Store) {
	if err := s.(store.Expirer).Expire(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestConformanceMemory(t *testing.T) {
	d := &dbs{byT: map[*testing.T]*DB{}, open: func(t *testing.T) *DB {
		db := Memory()
		t.Cleanup(func() { db.Close() })
		return db
	}}
	storetest.Run(t, d.newStore, expire)
}

func TestConformanceFile(t *testing.T) {
	d := &dbs{byT: map[*testing.T]*DB{}, open: func(t *testing.T) *DB {
		db, err := Open(filepath.Join(t.TempDir(), "tree.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := db.Close(); err != nil {
				t.Error(err)
			}
		})
		return db
	}}
	storetest.Run(t, d.newStore, expire)
}

func TestPersistentSurvivesReopenEphemeralDoesNot(t *testing.T) {
	ctx := t.Context()
	file := filepath.Join(t.TempDir(), "tree.db")
	db, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := db.Session()
	firstID := s.ID()
	mustCreate(t, s, "/jobs", nil, 0)
	mustCreate(t, s, "/jobs/copy-orders", []byte("spec"), 0)
	if _, err := s.Set(ctx, "/jobs/copy-orders", []byte("spec v2"), 0); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "/nodes", nil, 0)
	mustCreate(t, s, "/nodes/node-", []byte("me"), store.Ephemeral|store.Sequential)
	mustCreate(t, s, "/queue", nil, 0)
	for range 3 {
		mustCreate(t, s, "/queue/run-", nil, store.Sequential)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, _ = db.Session()
	data, st, err := s.Get(ctx, "/jobs/copy-orders")
	if err != nil || string(data) != "spec v2" || st.Version != 1 {
		t.Fatalf("after reopen: %q v%d %v, want \"spec v2\" v1", data, st.Version, err)
	}
	if kids, _ := s.Children(ctx, "/nodes"); len(kids) != 0 {
		t.Fatalf("ephemeral nodes %v survived Close and reopen", kids)
	}
	// Sequence counters persist: numbers continue, never reused.
	made := mustCreate(t, s, "/queue/run-", nil, store.Sequential)
	if made != "/queue/run-0000000003" {
		t.Fatalf("sequential after reopen %q, want /queue/run-0000000003", made)
	}
	made = mustCreate(t, s, "/nodes/node-", nil, store.Ephemeral|store.Sequential)
	if made != "/nodes/node-0000000002" {
		t.Fatalf("ephemeral sequential after reopen %q, want /nodes/node-0000000002 (1 create + 1 delete before)", made)
	}
	// Session IDs never repeat, so an old EphemeralOwner cannot match.
	if s.ID() <= firstID {
		t.Fatalf("session ID %d after reopen, not above %d", s.ID(), firstID)
	}
}

func mustCreate(t *testing.T, s store.Store, p string, data []byte, f store.Flags) string {
	t.Helper()
	made, err := s.Create(t.Context(), p, data, f)
	if err != nil {
		t.Fatal(err)
	}
	return made
}

// The crash test runs this in a child process: it builds a tree with
// ephemeral nodes, reports ready, and waits to be killed.
func TestMain(m *testing.M) {
	if file := os.Getenv("EMBEDDED_CRASH_CHILD"); file != "" {
		crashChild(file)
		return
	}
	os.Exit(m.Run())
}

func crashChild(file string) {
	ctx := context.Background()
	db, err := Open(file)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	a, _ := db.Session()
	b, _ := db.Session()
	for _, step := range []func() error{
		func() error { _, err := a.Create(ctx, "/jobs", nil, 0); return err },
		func() error { _, err := a.Create(ctx, "/jobs/j1", []byte("spec"), 0); return err },
		func() error { _, err := a.Create(ctx, "/nodes", nil, 0); return err },
		func() error {
			_, err := a.Create(ctx, "/nodes/node-", nil, store.Ephemeral|store.Sequential)
			return err
		},
		func() error {
			_, err := b.Create(ctx, "/nodes/node-", nil, store.Ephemeral|store.Sequential)
			return err
		},
		func() error { _, err := b.Create(ctx, "/leader", nil, store.Ephemeral); return err },
	} {
		if err := step(); err != nil {
			fmt.Println("step:", err)
			os.Exit(2)
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // killed long before
	os.Exit(3)
}

// A process that dies without closing leaves its ephemeral nodes in the
// file; the next Open removes them. While it runs, nobody else can open the
// file, and the error says why.
func TestCrashedProcessEphemeralsGoneAtOpen(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tree.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EMBEDDED_CRASH_CHILD="+file)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make([]byte, 64)
	n, _ := stdout.Read(line)
	if got := strings.TrimSpace(string(line[:n])); got != "ready" {
		t.Fatalf("child said %q", got)
	}

	_, err = Open(file)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), file) {
		t.Fatalf("Open while another process has the file: %v; want ErrInUse naming %s", err, file)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	db, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, _ := db.Session()
	ctx := t.Context()
	if data, _, err := s.Get(ctx, "/jobs/j1"); err != nil || string(data) != "spec" {
		t.Fatalf("persistent node after crash: %q %v", data, err)
	}
	if kids, err := s.Children(ctx, "/nodes"); err != nil || len(kids) != 0 {
		t.Fatalf("ephemeral nodes after crash: %v %v; want none", kids, err)
	}
	if ok, _, _ := s.Exists(ctx, "/leader"); ok {
		t.Fatal("a dead process's leader node survived")
	}
	// The dead sessions are forgotten: only ours is recorded now.
	var recorded int
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		recorded = tx.Bucket(bucketSessions).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if recorded != 1 {
		t.Fatalf("%d sessions recorded, want 1 (ours)", recorded)
	}
}

func TestSecondOpenInProcessIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tree.db")
	db, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(file)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	if want := file + ": in use by another datashift process"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

func TestExpireSessionByID(t *testing.T) {
	ctx := t.Context()
	db := Memory()
	defer db.Close()
	a, _ := db.Session()
	b, _ := db.Session()
	mustCreate(t, a, "/eph", nil, store.Ephemeral)
	old := a.ID()
	if err := db.ExpireSession(old); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := b.Exists(ctx, "/eph"); ok {
		t.Fatal("ephemeral node survived ExpireSession")
	}
	if a.ID() == old {
		t.Fatal("session kept its ID after expiry")
	}
	if err := db.ExpireSession(old); !errors.Is(err, store.ErrBadArguments) {
		t.Fatalf("expiring a dead session: %v, want ErrBadArguments", err)
	}
	// Closing the DB closes its sessions.
	db.Close()
	if _, _, err := b.Get(ctx, "/"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("session of a closed DB: %v, want ErrClosed", err)
	}
	if _, err := db.Session(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("new session on a closed DB: %v, want ErrClosed", err)
	}
}
