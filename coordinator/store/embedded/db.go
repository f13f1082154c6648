// Package embedded is the in-process store.Store backend: the zero-setup
// default when no ZooKeeper address is given, with ZooKeeper's semantics
// (sessions, ephemeral and sequential nodes, one-shot watches, atomic Multi).
//
// A DB holds the tree; each Session on it is one store.Store, so several
// coordinator nodes can run in one process and see each other's ephemeral
// nodes, as they would on a ZooKeeper ensemble. The tree lives in memory and,
// for a DB opened on a file, every change is also written to that file with
// bbolt before it becomes visible, in one transaction per call (a Multi is one
// transaction). Persistent nodes therefore survive a crash; ephemeral nodes do
// not: the file records which sessions were open, and Open deletes the
// ephemeral nodes of sessions of a previous process, as ZooKeeper does when a
// dead client's session times out.
//
// Only one process can open a file; another gets ErrInUse.
package embedded

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/datashift/datashift/coordinator/store"
)

// ErrInUse is returned by Open when another process holds the file.
var ErrInUse = errors.New("in use by another datashift process")

// lockTimeout is how long Open waits for another process to let go of the
// file. Short: a second node started on the same file by mistake should be
// told so, not hang.
const lockTimeout = 500 * time.Millisecond

// DB is an embedded tree shared by any number of sessions. Safe for
// concurrent use.
type DB struct {
	file string   // "" in memory mode
	bolt *bolt.DB // nil in memory mode

	// mu guards the tree and the sessions. Writers hold it while the bbolt
	// transaction commits, so a change is on disk before anyone can see it;
	// readers share it.
	mu       sync.RWMutex
	nodes    map[string]*node
	sessions map[int64]*Session
	lastID   int64 // last session ID handed out; persisted so IDs never repeat
	closed   bool

	watchMu sync.Mutex // taken inside mu, never the other way round
	watches map[watchKey]map[*watch]struct{}

	now func() time.Time
}

func newDB() *DB {
	db := &DB{
		nodes:    make(map[string]*node),
		sessions: make(map[int64]*Session),
		watches:  make(map[watchKey]map[*watch]struct{}),
		now:      time.Now,
	}
	t := db.now().UnixMilli()
	db.nodes["/"] = &node{ctime: t, mtime: t, children: make(map[string]struct{})}
	return db
}

// Memory returns a DB that lives only in this process's memory: for tests,
// demos, and runs that need no resume.
func Memory() *DB {
	return newDB()
}

var (
	bucketNodes    = []byte("nodes")
	bucketSessions = []byte("sessions")
	bucketMeta     = []byte("meta")
	keyLastSession = []byte("last-session")
)

// Open opens or creates the tree persisted in file, removing the ephemeral
// nodes of sessions a previous process left behind.
func Open(file string) (*DB, error) {
	b, err := bolt.Open(file, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded: open %s: %w", file, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", file, err)
	}
	db := newDB()
	db.file, db.bolt = file, b
	if err := b.Update(db.load); err != nil {
		b.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", file, err)
	}
	return db, nil
}

// load reads the tree from the file and ends the sessions recorded in it.
// The file lock means no other process has it open, so every recorded
// session belongs to a process that is gone.
func (db *DB) load(tx *bolt.Tx) error {
	nodes, err := tx.CreateBucketIfNotExists(bucketNodes)
	if err != nil {
		return err
	}
	sessions, err := tx.CreateBucketIfNotExists(bucketSessions)
	if err != nil {
		return err
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	err = nodes.ForEach(func(k, v []byte) error {
		n, err := decodeNode(v)
		if err != nil {
			return fmt.Errorf("node %s: %w", k, err)
		}
		db.nodes[string(k)] = n
		return nil
	})
	if err != nil {
		return err
	}
	if v := meta.Get(keyLastSession); len(v) == 8 {
		db.lastID = int64(be.Uint64(v))
	}
	// Parents sort before children (a prefix sorts first), but linking after
	// loading everything does not depend on it.
	paths := make([]string, 0, len(db.nodes))
	for p := range db.nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if p == "/" {
			continue
		}
		parent := db.nodes[store.Parent(p)]
		if parent == nil {
			return fmt.Errorf("node %s has no parent: file corrupt", p)
		}
		parent.children[store.Base(p)] = struct{}{}
	}
	if err := nodes.Put([]byte("/"), db.nodes["/"].encode()); err != nil {
		return err
	}

	// Every ephemeral node is stale, including any whose session record was
	// lost: no session of this process exists yet.
	for _, p := range paths {
		n := db.nodes[p]
		if n.owner == 0 {
			continue
		}
		parentPath := store.Parent(p)
		parent := db.nodes[parentPath]
		delete(parent.children, store.Base(p))
		parent.cversion++
		delete(db.nodes, p)
		if err := nodes.Delete([]byte(p)); err != nil {
			return err
		}
		if err := nodes.Put([]byte(parentPath), parent.encode()); err != nil {
			return err
		}
	}
	var stale [][]byte
	err = sessions.ForEach(func(k, _ []byte) error {
		stale = append(stale, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := sessions.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Path is the file the DB is persisted to, or "" in memory mode.
func (db *DB) Path() string { return db.file }

// Session opens a new session on the tree.
func (db *DB) Session() (*Session, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil, fmt.Errorf("embedded: new session: %w", store.ErrClosed)
	}
	s := newSession(db)
	id, err := db.newSessionID(nil)
	if err != nil {
		return nil, err
	}
	s.id = id
	db.sessions[id] = s
	return s, nil
}

// newSessionID allocates and records a session ID. With tx non-nil it joins
// that transaction so ending one session and starting the next is atomic.
func (db *DB) newSessionID(t *txn) (int64, error) {
	id := db.lastID + 1
	record := func(tx *bolt.Tx) error {
		var k [8]byte
		be.PutUint64(k[:], uint64(id))
		if err := tx.Bucket(bucketMeta).Put(keyLastSession, k[:]); err != nil {
			return err
		}
		var v [8]byte
		be.PutUint64(v[:], uint64(db.now().UnixMilli()))
		return tx.Bucket(bucketSessions).Put(k[:], v[:])
	}
	if t != nil {
		t.extra = append(t.extra, record)
	} else if db.bolt != nil {
		if err := db.bolt.Update(record); err != nil {
			return 0, fmt.Errorf("embedded: record session in %s: %w", db.file, err)
		}
	}
	db.lastID = id
	return id, nil
}

// ExpireSession ends session id as if its owner had gone silent: see
// Session.Expire.
func (db *DB) ExpireSession(id int64) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	s := db.sessions[id]
	if s == nil {
		return fmt.Errorf("embedded: expire session %d: no such live session: %w", id, store.ErrBadArguments)
	}
	return s.endLocked(store.Expired)
}

// Close closes every session (deleting their ephemeral nodes) and the file.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	var errs []error
	for _, s := range db.sessionsSorted() {
		errs = append(errs, s.endLocked(store.Closed))
	}
	db.closed = true
	if db.bolt != nil {
		if err := db.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("embedded: close %s: %w", db.file, err))
		}
	}
	return errors.Join(errs...)
}

func (db *DB) sessionsSorted() []*Session {
	ss := make([]*Session, 0, len(db.sessions))
	for _, s := range db.sessions {
		ss = append(ss, s)
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].id < ss[j].id })
	return ss
}
