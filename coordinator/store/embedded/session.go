package embedded

import (
	"context"
	"fmt"
	"slices"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/internal/fanout"
)

// Session is one session on a DB: a store.Store whose ephemeral nodes and
// watches are its own. Like a ZooKeeper client, it carries on with a new
// session ID after Expire; only Close ends it.
type Session struct {
	db      *DB
	id      int64               // guarded by db.mu
	closed  bool                // guarded by db.mu
	watches map[*watch]struct{} // guarded by db.watchMu
	events  *fanout.Fanout[store.SessionEvent]
}

var (
	_ store.Store   = (*Session)(nil)
	_ store.Expirer = (*Session)(nil)
)

func newSession(db *DB) *Session {
	return &Session{db: db, watches: make(map[*watch]struct{}), events: fanout.New[store.SessionEvent]()}
}

// ID returns the current session ID, the EphemeralOwner of its nodes.
func (s *Session) ID() int64 {
	s.db.mu.RLock()
	defer s.db.mu.RUnlock()
	return s.id
}

// Expire ends the current session as ZooKeeper does when a client falls
// silent for the session timeout: its ephemeral nodes are deleted (other
// sessions' watches see it), its watches fire with EventSessionLost, and
// Expired then Connected with a new ID are reported. The Session stays
// usable on the new session.
func (s *Session) Expire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if s.closed {
		return fmt.Errorf("embedded: expire: %w", store.ErrClosed)
	}
	return s.endLocked(store.Expired)
}

// Close ends the session for good; its ephemeral nodes are deleted at once.
func (s *Session) Close() error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.endLocked(store.Closed)
}

// endLocked ends the current session with db.mu held: ephemeral nodes and
// the session record go in one transaction (with the next session's record,
// on expiry), then the watches fire and the events are published.
func (s *Session) endLocked(why store.SessionState) error {
	db := s.db
	old := s.id
	t := db.begin()
	var mine []string
	for p, n := range db.nodes {
		if n.owner == old {
			mine = append(mine, p)
		}
	}
	sort.Strings(mine)
	for _, p := range mine {
		// Ephemeral nodes have no children, so this cannot fail.
		if err := t.delete(p, store.AnyVersion); err != nil {
			t.rollback()
			return fmt.Errorf("embedded: end session %d: delete %s: %w", old, p, err)
		}
	}
	t.extra = append(t.extra, func(tx *bolt.Tx) error {
		var k [8]byte
		be.PutUint64(k[:], uint64(old))
		return tx.Bucket(bucketSessions).Delete(k[:])
	})
	next := int64(0)
	if why == store.Expired {
		id, err := db.newSessionID(t)
		if err != nil {
			t.rollback()
			return err
		}
		next = id
	}
	var failed error
	if err := t.commit(); err != nil {
		failed = fmt.Errorf("embedded: end session %d: %w", old, err)
		if why != store.Closed {
			return failed
		}
		// Closing goes ahead in memory even if the file cannot be written:
		// the caller is done with the session either way, and whatever
		// ephemeral nodes stay in the file are removed at the next Open.
	}
	lost := store.ErrSessionExpired
	if why == store.Closed {
		lost = store.ErrClosed
	}
	db.dropWatches(s, lost)
	delete(db.sessions, old)
	s.events.Publish(store.SessionEvent{State: why, SessionID: old})
	if why == store.Expired {
		s.id = next
		db.sessions[next] = s
		s.events.Publish(store.SessionEvent{State: store.Connected, SessionID: next})
	} else {
		s.closed = true
		s.events.Close()
	}
	return failed
}

// SessionEvents implements store.Store.
func (s *Session) SessionEvents(ctx context.Context) <-chan store.SessionEvent {
	s.db.mu.RLock()
	defer s.db.mu.RUnlock()
	first := store.SessionEvent{State: store.Connected, SessionID: s.id}
	if s.closed {
		first.State = store.Closed
	}
	return s.events.Subscribe(ctx, first)
}

func (s *Session) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// write runs fn in a transaction under the write lock.
func (s *Session) write(ctx context.Context, op, path string, fn func(t *txn) error) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("embedded: %s: %w", where(op, path), err)
	}
	t := s.db.begin()
	if err := fn(t); err != nil {
		t.rollback()
		return fmt.Errorf("embedded: %s: %w", where(op, path), err)
	}
	if err := t.commit(); err != nil {
		return fmt.Errorf("embedded: %s: %w", where(op, path), err)
	}
	return nil
}

// read runs fn under the shared lock.
func (s *Session) read(ctx context.Context, op, path string, fn func() error) error {
	s.db.mu.RLock()
	defer s.db.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("embedded: %s: %w", where(op, path), err)
	}
	if err := store.ValidatePath(path, false); err != nil {
		return fmt.Errorf("embedded: %s: %w", op, err)
	}
	if err := fn(); err != nil {
		return fmt.Errorf("embedded: %s: %w", where(op, path), err)
	}
	return nil
}

// Create implements store.Store.
func (s *Session) Create(ctx context.Context, path string, data []byte, flags store.Flags) (string, error) {
	var made string
	err := s.write(ctx, "create", path, func(t *txn) error {
		var err error
		made, err = t.create(path, data, flags, s.id)
		return err
	})
	return made, err
}

// Set implements store.Store.
func (s *Session) Set(ctx context.Context, path string, data []byte, version int32) (store.Stat, error) {
	var st store.Stat
	err := s.write(ctx, "set", path, func(t *txn) error {
		var err error
		st, err = t.set(path, data, version)
		return err
	})
	return st, err
}

// Delete implements store.Store.
func (s *Session) Delete(ctx context.Context, path string, version int32) error {
	return s.write(ctx, "delete", path, func(t *txn) error {
		return t.delete(path, version)
	})
}

// Multi implements store.Store: all ops in one transaction, one file write.
func (s *Session) Multi(ctx context.Context, ops ...store.Op) ([]store.OpResult, error) {
	out := make([]store.OpResult, len(ops))
	var failed *store.MultiError
	err := s.write(ctx, "multi", "", func(t *txn) error {
		total := 0
		for i, op := range ops {
			total += len(op.Data)
			var err error
			out[i].Path = op.Path
			switch op.Kind {
			case store.OpCreate:
				out[i].Path, err = t.create(op.Path, op.Data, op.Flags, s.id)
			case store.OpSet:
				out[i].Stat, err = t.set(op.Path, op.Data, op.Version)
			case store.OpDelete:
				err = t.delete(op.Path, op.Version)
			case store.OpCheck:
				err = t.check(op.Path, op.Version)
			default:
				err = fmt.Errorf("unknown op kind %d: %w", op.Kind, store.ErrBadArguments)
			}
			if err != nil {
				failed = &store.MultiError{Index: i, Op: op, Err: err}
				return failed
			}
		}
		// ZooKeeper sends a Multi as one packet and caps its size.
		if total > store.MaxDataSize {
			return fmt.Errorf("%d bytes in all: %w", total, store.ErrDataTooLarge)
		}
		return nil
	})
	if err != nil {
		if failed != nil {
			return nil, fmt.Errorf("embedded: %w", failed)
		}
		return nil, err
	}
	return out, nil
}

// Get implements store.Store.
func (s *Session) Get(ctx context.Context, path string) ([]byte, store.Stat, error) {
	data, st, _, err := s.get(ctx, path, false)
	return data, st, err
}

// GetW implements store.Store.
func (s *Session) GetW(ctx context.Context, path string) ([]byte, store.Stat, <-chan store.Event, error) {
	return s.get(ctx, path, true)
}

func (s *Session) get(ctx context.Context, path string, watch bool) ([]byte, store.Stat, <-chan store.Event, error) {
	var (
		data []byte
		st   store.Stat
		ch   <-chan store.Event
	)
	err := s.read(ctx, "get", path, func() error {
		n := s.db.nodes[path]
		if n == nil {
			return store.ErrNoNode
		}
		data, st = clone(n.data), n.stat()
		if watch {
			ch = s.db.addWatch(s, path, watchData)
		}
		return nil
	})
	return data, st, ch, err
}

// Exists implements store.Store.
func (s *Session) Exists(ctx context.Context, path string) (bool, store.Stat, error) {
	ok, st, _, err := s.exists(ctx, path, false)
	return ok, st, err
}

// ExistsW implements store.Store.
func (s *Session) ExistsW(ctx context.Context, path string) (bool, store.Stat, <-chan store.Event, error) {
	return s.exists(ctx, path, true)
}

func (s *Session) exists(ctx context.Context, path string, watch bool) (bool, store.Stat, <-chan store.Event, error) {
	var (
		ok bool
		st store.Stat
		ch <-chan store.Event
	)
	err := s.read(ctx, "exists", path, func() error {
		kind := watchExist
		if n := s.db.nodes[path]; n != nil {
			ok, st, kind = true, n.stat(), watchData
		}
		if watch {
			ch = s.db.addWatch(s, path, kind)
		}
		return nil
	})
	return ok, st, ch, err
}

// Children implements store.Store.
func (s *Session) Children(ctx context.Context, path string) ([]string, error) {
	kids, _, err := s.children(ctx, path, false)
	return kids, err
}

// ChildrenW implements store.Store.
func (s *Session) ChildrenW(ctx context.Context, path string) ([]string, <-chan store.Event, error) {
	return s.children(ctx, path, true)
}

func (s *Session) children(ctx context.Context, path string, watch bool) ([]string, <-chan store.Event, error) {
	var (
		kids []string
		ch   <-chan store.Event
	)
	err := s.read(ctx, "children", path, func() error {
		n := s.db.nodes[path]
		if n == nil {
			return store.ErrNoNode
		}
		kids = make([]string, 0, len(n.children))
		for k := range n.children {
			kids = append(kids, k)
		}
		slices.Sort(kids)
		if watch {
			ch = s.db.addWatch(s, path, watchChild)
		}
		return nil
	})
	return kids, ch, err
}

func where(op, path string) string {
	if path == "" {
		return op
	}
	return op + " " + path
}
