package zkstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/datashift/datashift/coordinator/store"
)

// The zk client takes no context; a call runs to its answer or to the
// client's own timeouts. run lets the caller stop waiting when ctx ends. A
// write abandoned that way may still be applied, as with ErrConnectionLoss.
func run[T any](ctx context.Context, s *Store, fn func() (T, error)) (T, error) {
	var zero T
	if s.isClosed() {
		return zero, store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if ctx.Done() == nil {
		return fn()
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

var errMap = []struct{ zk, store error }{
	{zk.ErrNoNode, store.ErrNoNode},
	{zk.ErrNodeExists, store.ErrNodeExists},
	{zk.ErrBadVersion, store.ErrBadVersion},
	{zk.ErrNotEmpty, store.ErrNotEmpty},
	{zk.ErrNoChildrenForEphemerals, store.ErrNoChildrenForEphemerals},
	{zk.ErrInvalidPath, store.ErrInvalidPath},
	{zk.ErrBadArguments, store.ErrBadArguments},
	{zk.ErrSessionExpired, store.ErrSessionExpired},
	{zk.ErrConnectionClosed, store.ErrConnectionLoss},
	{zk.ErrNoServer, store.ErrConnectionLoss},
	{zk.ErrSessionMoved, store.ErrConnectionLoss},
	{zk.ErrClosing, store.ErrClosed},
}

// fail wraps err with the operation and path, as a store error where one
// matches so callers can use errors.Is with the store's sentinels.
func (s *Store) fail(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("zkstore: %s %s: %w", op, path, s.mapErr(err))
}

// mapErr returns the store error for a zk one; others pass unchanged.
func (s *Store) mapErr(err error) error {
	for _, m := range errMap {
		if errors.Is(err, m.zk) {
			if m.store == store.ErrClosed && !s.isClosed() {
				// The client says "closing" only when closed by us; any other
				// time it is a lost connection.
				return store.ErrConnectionLoss
			}
			return m.store
		}
	}
	return err
}

func isStoreErr(err error) bool {
	for _, m := range errMap {
		if errors.Is(err, m.store) {
			return true
		}
	}
	return errors.Is(err, store.ErrDataTooLarge)
}

func toStat(st *zk.Stat) store.Stat {
	if st == nil {
		return store.Stat{}
	}
	return store.Stat{
		Version:        st.Version,
		CVersion:       st.Cversion,
		EphemeralOwner: st.EphemeralOwner,
		DataLength:     int(st.DataLength),
		NumChildren:    int(st.NumChildren),
		Ctime:          time.UnixMilli(st.Ctime),
		Mtime:          time.UnixMilli(st.Mtime),
	}
}

func zkFlags(f store.Flags) int32 {
	var z int32
	if f&store.Ephemeral != 0 {
		z |= zk.FlagEphemeral
	}
	if f&store.Sequential != 0 {
		z |= zk.FlagSequence
	}
	return z
}

var openACL = zk.WorldACL(zk.PermAll)

func checkPath(p string, sequential bool) error {
	return store.ValidatePath(p, sequential)
}

func checkData(data []byte) error {
	if len(data) > store.MaxDataSize {
		return fmt.Errorf("%d bytes: %w", len(data), store.ErrDataTooLarge)
	}
	return nil
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, path string, data []byte, flags store.Flags) (string, error) {
	if err := checkPath(path, flags&store.Sequential != 0); err != nil {
		return "", s.fail("create", path, err)
	}
	if err := checkData(data); err != nil {
		return "", s.fail("create", path, err)
	}
	made, err := run(ctx, s, func() (string, error) {
		return s.conn.Create(s.absCreate(path, flags), data, zkFlags(flags), openACL)
	})
	if err != nil {
		return "", s.fail("create", path, err)
	}
	return s.rel(made), nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, path string) ([]byte, store.Stat, error) {
	if err := checkPath(path, false); err != nil {
		return nil, store.Stat{}, s.fail("get", path, err)
	}
	type res struct {
		data []byte
		st   *zk.Stat
	}
	r, err := run(ctx, s, func() (res, error) {
		d, st, err := s.conn.Get(s.abs(path))
		return res{d, st}, err
	})
	if err != nil {
		return nil, store.Stat{}, s.fail("get", path, err)
	}
	return r.data, toStat(r.st), nil
}

// Exists implements store.Store.
func (s *Store) Exists(ctx context.Context, path string) (bool, store.Stat, error) {
	if err := checkPath(path, false); err != nil {
		return false, store.Stat{}, s.fail("exists", path, err)
	}
	type res struct {
		ok bool
		st *zk.Stat
	}
	r, err := run(ctx, s, func() (res, error) {
		ok, st, err := s.conn.Exists(s.abs(path))
		return res{ok, st}, err
	})
	if err != nil {
		return false, store.Stat{}, s.fail("exists", path, err)
	}
	if !r.ok {
		return false, store.Stat{}, nil
	}
	return true, toStat(r.st), nil
}

// Children implements store.Store. ZooKeeper returns them in no order.
func (s *Store) Children(ctx context.Context, path string) ([]string, error) {
	if err := checkPath(path, false); err != nil {
		return nil, s.fail("children", path, err)
	}
	kids, err := run(ctx, s, func() ([]string, error) {
		k, _, err := s.conn.Children(s.abs(path))
		return k, err
	})
	if err != nil {
		return nil, s.fail("children", path, err)
	}
	return sorted(kids), nil
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, path string, data []byte, version int32) (store.Stat, error) {
	if err := checkPath(path, false); err != nil {
		return store.Stat{}, s.fail("set", path, err)
	}
	if err := checkData(data); err != nil {
		return store.Stat{}, s.fail("set", path, err)
	}
	st, err := run(ctx, s, func() (*zk.Stat, error) {
		return s.conn.Set(s.abs(path), data, version)
	})
	if err != nil {
		return store.Stat{}, s.fail("set", path, err)
	}
	return toStat(st), nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, path string, version int32) error {
	if err := checkPath(path, false); err != nil {
		return s.fail("delete", path, err)
	}
	if path == "/" {
		return s.fail("delete", path, fmt.Errorf("the root cannot be deleted: %w", store.ErrBadArguments))
	}
	_, err := run(ctx, s, func() (struct{}, error) {
		return struct{}{}, s.conn.Delete(s.abs(path), version)
	})
	return s.fail("delete", path, err)
}
