package embedded

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/datashift/datashift/coordinator/store"
)

// txn changes the in-memory tree in place, under db.mu, keeping what it
// needs to undo the changes and to write them to disk. A call either commits
// (disk first, then watches fire) or rolls back, so no one ever sees a half
// applied Multi.
type txn struct {
	db      *DB
	undo    []func()
	dirty   map[string]struct{} // paths whose record is to be written or deleted
	changes []change            // in order, for the watches
	extra   []func(*bolt.Tx) error
}

type changeKind int

const (
	changeCreated changeKind = iota + 1
	changeData
	changeDeleted
)

type change struct {
	kind changeKind
	path string
}

func (db *DB) begin() *txn {
	return &txn{db: db, dirty: make(map[string]struct{})}
}

func (t *txn) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
	t.undo = nil
}

// commit writes the changed records in one bbolt transaction and then fires
// the watches. If the write fails, the memory tree is rolled back too.
func (t *txn) commit() error {
	db := t.db
	if db.bolt != nil && (len(t.dirty) > 0 || len(t.extra) > 0) {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketNodes)
			for p := range t.dirty {
				var err error
				if n := db.nodes[p]; n != nil {
					err = b.Put([]byte(p), n.encode())
				} else {
					err = b.Delete([]byte(p))
				}
				if err != nil {
					return err
				}
			}
			for _, f := range t.extra {
				if err := f(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.rollback()
			return fmt.Errorf("write %s: %w", db.file, err)
		}
	}
	db.fire(t.changes)
	return nil
}

func (t *txn) touch(p string) { t.dirty[p] = struct{}{} }

func (t *txn) create(path string, data []byte, flags store.Flags, owner int64) (string, error) {
	seq := flags&store.Sequential != 0
	if err := store.ValidatePath(path, seq); err != nil {
		return "", err
	}
	if len(data) > store.MaxDataSize {
		return "", fmt.Errorf("%d bytes: %w", len(data), store.ErrDataTooLarge)
	}
	parentPath := store.Parent(path)
	parent := t.db.nodes[parentPath]
	if parent == nil {
		return "", fmt.Errorf("parent %s: %w", parentPath, store.ErrNoNode)
	}
	if parent.owner != 0 {
		return "", store.ErrNoChildrenForEphemerals
	}
	if seq {
		// ZooKeeper numbers from the parent's child-change count; doing the
		// same keeps names identical across backends.
		path = store.SequenceName(path, parent.cversion)
	}
	if path == "/" || t.db.nodes[path] != nil {
		return "", store.ErrNodeExists
	}
	if flags&store.Ephemeral == 0 {
		owner = 0
	}
	now := t.db.now().UnixMilli()
	n := &node{data: clone(data), owner: owner, ctime: now, mtime: now, children: make(map[string]struct{})}
	name := store.Base(path)
	t.db.nodes[path] = n
	parent.children[name] = struct{}{}
	parent.cversion++
	t.undo = append(t.undo, func() {
		delete(t.db.nodes, path)
		delete(parent.children, name)
		parent.cversion--
	})
	t.touch(path)
	t.touch(parentPath)
	t.changes = append(t.changes, change{changeCreated, path})
	return path, nil
}

// lookup finds a node whose version matches.
func (t *txn) lookup(path string, version int32) (*node, error) {
	if err := store.ValidatePath(path, false); err != nil {
		return nil, err
	}
	n := t.db.nodes[path]
	if n == nil {
		return nil, store.ErrNoNode
	}
	if version != store.AnyVersion && version != n.version {
		return nil, fmt.Errorf("at version %d, not %d: %w", n.version, version, store.ErrBadVersion)
	}
	return n, nil
}

func (t *txn) set(path string, data []byte, version int32) (store.Stat, error) {
	if len(data) > store.MaxDataSize {
		return store.Stat{}, fmt.Errorf("%d bytes: %w", len(data), store.ErrDataTooLarge)
	}
	n, err := t.lookup(path, version)
	if err != nil {
		return store.Stat{}, err
	}
	oldData, oldMtime := n.data, n.mtime
	n.data = clone(data)
	n.version++
	n.mtime = t.db.now().UnixMilli()
	t.undo = append(t.undo, func() {
		n.data, n.mtime = oldData, oldMtime
		n.version--
	})
	t.touch(path)
	t.changes = append(t.changes, change{changeData, path})
	return n.stat(), nil
}

func (t *txn) delete(path string, version int32) error {
	if path == "/" {
		return fmt.Errorf("the root cannot be deleted: %w", store.ErrBadArguments)
	}
	n, err := t.lookup(path, version)
	if err != nil {
		return err
	}
	if len(n.children) > 0 {
		return store.ErrNotEmpty
	}
	parentPath := store.Parent(path)
	parent := t.db.nodes[parentPath]
	name := store.Base(path)
	delete(t.db.nodes, path)
	delete(parent.children, name)
	parent.cversion++
	t.undo = append(t.undo, func() {
		t.db.nodes[path] = n
		parent.children[name] = struct{}{}
		parent.cversion--
	})
	t.touch(path)
	t.touch(parentPath)
	t.changes = append(t.changes, change{changeDeleted, path})
	return nil
}

func (t *txn) check(path string, version int32) error {
	_, err := t.lookup(path, version)
	return err
}
