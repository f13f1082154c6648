package store

import (
	"errors"
	"fmt"
)

// Errors every backend returns, wrapped with the operation and path; check
// them with errors.Is.
//
// Retryable: ErrConnectionLoss (for a write, the outcome is unknown: the
// server may have applied it, so read before writing again). ErrSessionExpired
// means the ephemeral nodes and watches of the old session are gone; the store
// is already on a new session, so the caller re-creates them and retries.
// The others are answers about the tree and do not change on retry.
var (
	ErrNoNode                  = errors.New("node does not exist")
	ErrNodeExists              = errors.New("node already exists")
	ErrBadVersion              = errors.New("version mismatch")
	ErrNotEmpty                = errors.New("node has children")
	ErrNoChildrenForEphemerals = errors.New("ephemeral nodes cannot have children")
	ErrInvalidPath             = errors.New("invalid path")
	ErrBadArguments            = errors.New("bad arguments")
	ErrDataTooLarge            = errors.New("data larger than store.MaxDataSize")
	ErrSessionExpired          = errors.New("session expired")
	ErrConnectionLoss          = errors.New("connection to the store lost")
	ErrClosed                  = errors.New("store closed")
)

// MultiError is the error of a failed Multi: nothing was written, and Op
// (the Index-th) is the first that could not be applied.
type MultiError struct {
	Index int
	Op    Op
	Err   error
}

func (e *MultiError) Error() string {
	return fmt.Sprintf("multi: op %d (%s %s): %v", e.Index, e.Op.Kind, e.Op.Path, e.Err)
}

func (e *MultiError) Unwrap() error { return e.Err }
