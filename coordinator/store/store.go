package store

import (
	"context"
	"time"
)

// DefaultRoot is the chroot a cluster's tree lives under when the caller does
// not name one. Several clusters can share a ZooKeeper ensemble by using
// different roots.
const DefaultRoot = "/datashift"

// AnyVersion matches every version in Set, Delete and Check.
const AnyVersion int32 = -1

// MaxDataSize is the largest node payload both backends accept. ZooKeeper
// refuses packets over about 1 MiB by dropping the connection, which a caller
// would see as an endless connection loss; rejecting early turns that into a
// clear error, and the embedded store enforces the same limit so code that
// works standalone also works on a cluster.
const MaxDataSize = 1000 * 1000

// Flags choose the kind of node Create makes. The zero value is a persistent
// node with the exact name given.
type Flags int

const (
	// Ephemeral nodes belong to the creating session and are deleted when it
	// ends (expired or closed). They cannot have children.
	Ephemeral Flags = 1 << iota
	// Sequential appends a 10-digit, zero-padded number to the name, taken
	// from a counter the parent keeps. Create returns the full name.
	Sequential
)

// Stat is the metadata of a node.
type Stat struct {
	// Version counts Sets of the node's data since it was created (0 after
	// Create). It is what Set, Delete and Check compare against.
	Version int32
	// CVersion counts creations and deletions of children. Sequence numbers
	// are taken from it, so they grow but are not contiguous.
	CVersion int32
	// EphemeralOwner is the session ID of an ephemeral node's owner, and 0
	// for a persistent node.
	EphemeralOwner int64
	DataLength     int
	NumChildren    int
	Ctime, Mtime   time.Time
}

// EventType says what a watch saw.
type EventType int

const (
	EventCreated EventType = iota + 1
	EventDeleted
	EventDataChanged
	EventChildrenChanged
	// EventSessionLost ends a watch without a change being seen: the session
	// that set it expired or the store was closed (Event.Err says which).
	// Anything may have changed since; read again.
	EventSessionLost
)

func (t EventType) String() string {
	switch t {
	case EventCreated:
		return "created"
	case EventDeleted:
		return "deleted"
	case EventDataChanged:
		return "data changed"
	case EventChildrenChanged:
		return "children changed"
	case EventSessionLost:
		return "session lost"
	}
	return "unknown event"
}

// Event is what a watch channel delivers, once.
type Event struct {
	Type EventType
	Path string // the watched path, relative to the store's root
	Err  error  // for EventSessionLost: ErrSessionExpired or ErrClosed
}

// SessionState is the state a SessionEvent reports.
type SessionState int

const (
	// Connected: a session is established. After Expired, a Connected with a
	// new SessionID follows: the caller re-creates its ephemeral nodes and
	// watches.
	Connected SessionState = iota + 1
	// Disconnected: the connection to the server is lost, the session may
	// still be alive. Operations fail with ErrConnectionLoss until it is back.
	// The embedded store never disconnects.
	Disconnected
	// Expired: the session is over. Its ephemeral nodes are deleted and its
	// watches have fired with EventSessionLost.
	Expired
	// Closed: Close was called; no events follow.
	Closed
)

func (s SessionState) String() string {
	switch s {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Expired:
		return "expired"
	case Closed:
		return "closed"
	}
	return "unknown state"
}

// SessionEvent reports a change of the session behind a Store.
type SessionEvent struct {
	State SessionState
	// SessionID is the session the event is about: for Expired the one that
	// ended, for Connected the one now in use. It matches Stat.EphemeralOwner.
	SessionID int64
}

// Reader reads nodes.
type Reader interface {
	// Get returns the data and metadata of the node at path.
	Get(ctx context.Context, path string) ([]byte, Stat, error)
	// Exists reports whether a node is at path. A missing node is not an error.
	Exists(ctx context.Context, path string) (bool, Stat, error)
	// Children returns the names (not paths) of the children, sorted.
	Children(ctx context.Context, path string) ([]string, error)
}

// Writer changes nodes.
type Writer interface {
	// Create makes a node and returns its path, which differs from path for
	// a Sequential node. The parent must exist.
	Create(ctx context.Context, path string, data []byte, flags Flags) (string, error)
	// Set replaces the data if the node's version is version (or version is
	// AnyVersion) and returns the new metadata.
	Set(ctx context.Context, path string, data []byte, version int32) (Stat, error)
	// Delete removes a node without children if its version matches.
	Delete(ctx context.Context, path string, version int32) error
	// Multi applies all ops or none. On failure the error is a *MultiError
	// naming the first op that failed.
	Multi(ctx context.Context, ops ...Op) ([]OpResult, error)
}

// Watcher reads nodes and leaves a one-shot watch. The channel receives one
// Event and is then closed; it is buffered, so a watch nobody reads costs
// nothing but memory until it fires.
type Watcher interface {
	// GetW fires on a change of the node's data or its deletion.
	GetW(ctx context.Context, path string) ([]byte, Stat, <-chan Event, error)
	// ExistsW fires on creation if the node is missing, otherwise on a
	// change of its data or its deletion.
	ExistsW(ctx context.Context, path string) (bool, Stat, <-chan Event, error)
	// ChildrenW fires when a child is created or deleted, or the node itself
	// is deleted. Changes to a child's data do not fire it.
	ChildrenW(ctx context.Context, path string) ([]string, <-chan Event, error)
}

// ReadWriter is what the tree helpers need.
type ReadWriter interface {
	Reader
	Writer
}

// Store is one session on a ZooKeeper-shaped tree. See the package
// documentation for the guarantees.
type Store interface {
	Reader
	Writer
	Watcher
	// SessionEvents returns a channel of session changes. The first event
	// is the current state; every later change follows in order, none is
	// dropped, and the store never waits for the reader. The channel is
	// closed after Closed, or when ctx ends. Read it to the end or cancel
	// ctx, or its buffer lives as long as the process.
	SessionEvents(ctx context.Context) <-chan SessionEvent
	// Close ends the session: its ephemeral nodes are deleted at once and
	// its watches fire with EventSessionLost. Later calls fail with
	// ErrClosed.
	Close() error
}

// Expirer is implemented by stores that can end their session on purpose,
// as a server does when it hears nothing for the session timeout. The store
// carries on with a new session, as after a real expiry. Tests use it to
// rehearse failover.
type Expirer interface {
	Expire(ctx context.Context) error
}
