package embedded

import (
	"github.com/datashift/datashift/coordinator/store"
)

// The three kinds ZooKeeper keeps. ExistsW on an existing node leaves a data
// watch, as ZooKeeper does; on a missing node an exist watch.
type watchKind int

const (
	watchData watchKind = iota
	watchExist
	watchChild
)

type watchKey struct {
	path string
	kind watchKind
}

type watch struct {
	key   watchKey
	ch    chan store.Event // capacity 1: firing never blocks
	owner *Session
}

// addWatch registers a watch. The caller holds db.mu (shared is enough), so
// no write can slip between the read it answered and the registration.
func (db *DB) addWatch(s *Session, path string, kind watchKind) <-chan store.Event {
	w := &watch{key: watchKey{path, kind}, ch: make(chan store.Event, 1), owner: s}
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	set := db.watches[w.key]
	if set == nil {
		set = make(map[*watch]struct{})
		db.watches[w.key] = set
	}
	set[w] = struct{}{}
	s.watches[w] = struct{}{}
	return w.ch
}

// fire delivers the events for committed changes, in order. Each watch fires
// once and is forgotten.
func (db *DB) fire(changes []change) {
	if len(changes) == 0 {
		return
	}
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	if len(db.watches) == 0 {
		return
	}
	for _, c := range changes {
		parent := store.Parent(c.path)
		switch c.kind {
		case changeCreated:
			db.trigger(c.path, store.EventCreated, watchExist)
			db.trigger(parent, store.EventChildrenChanged, watchChild)
		case changeData:
			db.trigger(c.path, store.EventDataChanged, watchData, watchExist)
		case changeDeleted:
			db.trigger(c.path, store.EventDeleted, watchData, watchExist, watchChild)
			db.trigger(parent, store.EventChildrenChanged, watchChild)
		}
	}
}

func (db *DB) trigger(path string, typ store.EventType, kinds ...watchKind) {
	for _, k := range kinds {
		key := watchKey{path, k}
		for w := range db.watches[key] {
			delete(w.owner.watches, w)
			w.ch <- store.Event{Type: typ, Path: path}
			close(w.ch)
		}
		delete(db.watches, key)
	}
}

// dropWatches fires every watch of s with EventSessionLost.
func (db *DB) dropWatches(s *Session, err error) {
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	for w := range s.watches {
		delete(db.watches[w.key], w)
		if len(db.watches[w.key]) == 0 {
			delete(db.watches, w.key)
		}
		w.ch <- store.Event{Type: store.EventSessionLost, Path: w.key.path, Err: err}
		close(w.ch)
	}
	clear(s.watches)
}
