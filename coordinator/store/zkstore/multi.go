package zkstore

import (
	"context"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/datashift/datashift/coordinator/store"
)

// Multi implements store.Store.
func (s *Store) Multi(ctx context.Context, ops ...store.Op) ([]store.OpResult, error) {
	reqs := make([]any, len(ops))
	total := 0
	for i, op := range ops {
		if err := checkPath(op.Path, op.Kind == store.OpCreate && op.Flags&store.Sequential != 0); err != nil {
			return nil, fmt.Errorf("zkstore: %w", &store.MultiError{Index: i, Op: op, Err: err})
		}
		total += len(op.Data)
		if err := checkData(op.Data); err != nil {
			return nil, fmt.Errorf("zkstore: %w", &store.MultiError{Index: i, Op: op, Err: err})
		}
		p := s.abs(op.Path)
		switch op.Kind {
		case store.OpCreate:
			reqs[i] = &zk.CreateRequest{Path: s.absCreate(op.Path, op.Flags), Data: op.Data, Acl: openACL, Flags: zkFlags(op.Flags)}
		case store.OpSet:
			reqs[i] = &zk.SetDataRequest{Path: p, Data: op.Data, Version: op.Version}
		case store.OpDelete:
			if op.Path == "/" {
				return nil, fmt.Errorf("zkstore: %w", &store.MultiError{Index: i, Op: op, Err: fmt.Errorf("the root cannot be deleted: %w", store.ErrBadArguments)})
			}
			reqs[i] = &zk.DeleteRequest{Path: p, Version: op.Version}
		case store.OpCheck:
			reqs[i] = &zk.CheckVersionRequest{Path: p, Version: op.Version}
		default:
			return nil, fmt.Errorf("zkstore: %w", &store.MultiError{Index: i, Op: op, Err: fmt.Errorf("unknown op kind %d: %w", op.Kind, store.ErrBadArguments)})
		}
	}
	// The whole transaction travels as one packet, which the server caps.
	if total > store.MaxDataSize {
		return nil, fmt.Errorf("zkstore: multi: %d bytes in all: %w", total, store.ErrDataTooLarge)
	}
	if len(ops) == 0 {
		// Same closed and context checks as any call.
		if _, err := run(ctx, s, func() (struct{}, error) { return struct{}{}, nil }); err != nil {
			return nil, s.fail("multi", "", err)
		}
		return []store.OpResult{}, nil
	}
	resps, err := run(ctx, s, func() ([]zk.MultiResponse, error) {
		return s.conn.Multi(reqs...)
	})
	if err != nil {
		// The server reports every op: those before the failing one as fine,
		// the failing one with its error, those after as "not run" (an error
		// code the client does not know). The first known error is the cause.
		for i, r := range resps {
			if r.Error != nil && i < len(ops) {
				if mapped := s.mapErr(r.Error); isStoreErr(mapped) {
					return nil, fmt.Errorf("zkstore: %w", &store.MultiError{Index: i, Op: ops[i], Err: mapped})
				}
			}
		}
		return nil, s.fail("multi", "", err)
	}
	out := make([]store.OpResult, len(ops))
	for i, op := range ops {
		out[i].Path = op.Path
		if i >= len(resps) {
			continue
		}
		switch op.Kind {
		case store.OpCreate:
			out[i].Path = s.rel(resps[i].String)
		case store.OpSet:
			out[i].Stat = toStat(resps[i].Stat)
		}
	}
	return out, nil
}
