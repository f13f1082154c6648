package zkstore

import (
	"context"
	"errors"
	"slices"

	"github.com/go-zookeeper/zk"

	"github.com/datashift/datashift/coordinator/store"
)

// relay turns the zk client's watch channel into a store one. The client
// always sends exactly one event before closing its channel (a change, or
// EventNotWatching when the session expires or the connection is closed), so
// the goroutine ends when the watch does.
func (s *Store) relay(path string, in <-chan zk.Event) <-chan store.Event {
	out := make(chan store.Event, 1)
	go func() {
		defer close(out)
		ev, ok := <-in
		if !ok {
			out <- store.Event{Type: store.EventSessionLost, Path: path, Err: store.ErrClosed}
			return
		}
		out <- s.toEvent(path, ev)
	}()
	return out
}

func (s *Store) toEvent(path string, ev zk.Event) store.Event {
	out := store.Event{Path: path}
	if ev.Path != "" {
		out.Path = s.rel(ev.Path)
	}
	switch ev.Type {
	case zk.EventNodeCreated:
		out.Type = store.EventCreated
	case zk.EventNodeDeleted:
		out.Type = store.EventDeleted
	case zk.EventNodeDataChanged:
		out.Type = store.EventDataChanged
	case zk.EventNodeChildrenChanged:
		out.Type = store.EventChildrenChanged
	default:
		out.Type = store.EventSessionLost
		switch {
		case errors.Is(ev.Err, zk.ErrSessionExpired):
			out.Err = store.ErrSessionExpired
		case s.isClosed():
			out.Err = store.ErrClosed
		default:
			out.Err = s.fail("watch", path, ev.Err)
		}
	}
	return out
}

// GetW implements store.Store.
func (s *Store) GetW(ctx context.Context, path string) ([]byte, store.Stat, <-chan store.Event, error) {
	if err := checkPath(path, false); err != nil {
		return nil, store.Stat{}, nil, s.fail("get", path, err)
	}
	type res struct {
		data []byte
		st   *zk.Stat
		ch   <-chan zk.Event
	}
	r, err := run(ctx, s, func() (res, error) {
		d, st, ch, err := s.conn.GetW(s.abs(path))
		return res{d, st, ch}, err
	})
	if err != nil {
		return nil, store.Stat{}, nil, s.fail("get", path, err)
	}
	return r.data, toStat(r.st), s.relay(path, r.ch), nil
}

// ExistsW implements store.Store.
func (s *Store) ExistsW(ctx context.Context, path string) (bool, store.Stat, <-chan store.Event, error) {
	if err := checkPath(path, false); err != nil {
		return false, store.Stat{}, nil, s.fail("exists", path, err)
	}
	type res struct {
		ok bool
		st *zk.Stat
		ch <-chan zk.Event
	}
	r, err := run(ctx, s, func() (res, error) {
		ok, st, ch, err := s.conn.ExistsW(s.abs(path))
		return res{ok, st, ch}, err
	})
	if err != nil {
		return false, store.Stat{}, nil, s.fail("exists", path, err)
	}
	if !r.ok {
		return false, store.Stat{}, s.relay(path, r.ch), nil
	}
	return true, toStat(r.st), s.relay(path, r.ch), nil
}

// ChildrenW implements store.Store.
func (s *Store) ChildrenW(ctx context.Context, path string) ([]string, <-chan store.Event, error) {
	if err := checkPath(path, false); err != nil {
		return nil, nil, s.fail("children", path, err)
	}
	type res struct {
		kids []string
		ch   <-chan zk.Event
	}
	r, err := run(ctx, s, func() (res, error) {
		k, _, ch, err := s.conn.ChildrenW(s.abs(path))
		return res{k, ch}, err
	})
	if err != nil {
		return nil, nil, s.fail("children", path, err)
	}
	return sorted(r.kids), s.relay(path, r.ch), nil
}

func sorted(kids []string) []string {
	if kids == nil {
		return []string{}
	}
	slices.Sort(kids)
	return kids
}
