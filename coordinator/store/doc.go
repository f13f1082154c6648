// Package store is the seam between the coordinator and the tree it keeps
// cluster state in: a ZooKeeper-shaped tree of nodes with sessions,
// ephemeral and sequential nodes, one-shot watches and atomic multi-ops.
//
// Two backends implement Store and pass the same conformance suite
// (storetest): zkstore, on a real ZooKeeper ensemble, for clusters of
// several machines; and embedded, in-process and persisted to a local file,
// the zero-setup default. Code written against this package runs unchanged
// on either.
//
// # 1. A Store is one session
//
// Open a backend and you hold one session:
//
//	s, err := zkstore.Open(ctx, zkstore.Config{Servers: addrs, Root: "/datashift"})
//	// or, standalone:
//	db, err := embedded.Open("state.db") // embedded.Memory() for no file
//	s, err := db.Session()               // as many as there are in-process nodes
//	defer s.Close()
//
// Paths are absolute within the store's root ("/jobs/nightly"); a ZooKeeper
// store lives under a chroot (DefaultRoot unless told otherwise) and never
// sees or returns paths outside it. Path rules are ZooKeeper's (see
// ValidatePath). Build paths with Join.
//
// # 2. Nodes carry versions; writes compare them
//
// Create fails with ErrNodeExists if the node is there, and ErrNoNode if its
// parent is not (CreateAll makes parents). Every node has a Stat; its
// Version starts at 0 and grows by one with each Set. Set, Delete and Check
// take the version the caller last read, and fail with ErrBadVersion if
// someone wrote since: read, decide, write with the version read, and on
// ErrBadVersion read again. AnyVersion skips the comparison. Delete fails
// with ErrNotEmpty while the node has children (DeleteAll deletes a subtree).
// Data is at most MaxDataSize bytes; nil and empty are the same.
//
// # 3. Ephemeral nodes die with the session
//
// A node created Ephemeral belongs to the session that made it. Every
// session sees it (Stat.EphemeralOwner names the owner) until the owner
// closes or its session expires; then it is deleted as if by Delete, and
// watches on it fire. Ephemeral nodes cannot have children. This is how the
// cluster knows who is alive: a node registers itself with an ephemeral
// node, and a crashed node's registration disappears after the session
// timeout (ZooKeeper) or at the next Open of the file (embedded).
//
// A session expires when the server stops hearing from the client for the
// session timeout. The Store then reports Expired, goes on with a new
// session and reports Connected with the new ID; it is the caller's job to
// create its ephemeral nodes again. Calls in flight at the time fail with
// ErrConnectionLoss or ErrSessionExpired. So a coordinator node runs this loop:
//
//	for ev := range s.SessionEvents(ctx) {
//		switch ev.State {
//		case store.Expired:
//			// stop acting as leader at once: the election node is gone
//		case store.Connected:
//			// (re-)create ephemeral nodes and watches if ev.SessionID is new
//		}
//	}
//
// Disconnected (ZooKeeper only) means the connection is down but the session
// may survive: calls fail with ErrConnectionLoss, whose outcome for a write
// is unknown (the server may have applied it), so read before retrying.
// Ephemeral nodes and watches survive a disconnection that ends in time.
// A ZooKeeper client learns that its session expired only when it reaches a
// server again; while cut off it sees just Disconnected. So once
// Disconnected has lasted the session timeout, assume the session is gone:
// stop work that others will now take over (running partitions, acting as
// leader). Writes need no such care, as fenced writes fail on their own.
//
// # 4. Sequence numbers are per parent and only grow
//
// Create with Sequential appends a 10-digit, zero-padded number to the name
// ("/queue/run-" becomes "/queue/run-0000000007") and returns the name made.
// The number comes from the parent's child-change counter (Stat.CVersion):
// unique under that parent, increasing in the order creates were applied,
// not contiguous (deletions and plain creates move it too), and independent
// across parents. Order siblings by Sequence(name), not by name, when their
// prefixes differ. Leader election is the lowest ephemeral sequential node
// under the election parent.
//
// # 5. Watches are one-shot and may fire spuriously
//
// GetW, ExistsW and ChildrenW read and leave a watch. The channel delivers
// exactly one Event and is then closed:
//
//   - GetW: the node's data changed, or the node was deleted;
//   - ExistsW: created (if it was missing), or data changed or deleted;
//   - ChildrenW: a child was created or deleted, or the node was deleted
//     (not a child's data);
//   - any of them: EventSessionLost when the session expires (Err is
//     ErrSessionExpired) or the store is closed (ErrClosed).
//
// An event says that something changed, not what the tree now holds: several
// changes may have happened, or one and its undoing. Read again and set a new
// watch, in one call, before acting:
//
//	for {
//		kids, changed, err := s.ChildrenW(ctx, "/nodes")
//		if err != nil { ... }
//		act(kids)
//		select {
//		case <-changed:
//		case <-ctx.Done():
//			return
//		}
//	}
//
// The watch is set atomically with the read, so no change after the read is
// missed. Watch channels are buffered: one never read costs only memory, and
// it is released when it fires. Events of different watches, and session
// events, arrive on separate channels with no order between them.
//
// # 6. A Multi is all or nothing
//
// Multi applies a list of Create, Set, Delete and Check ops in one atomic
// step: later ops see the effects of earlier ones, and if any fails nothing
// is written, no watch fires, and the error is a *MultiError naming the first
// failing op (errors.Is still matches the cause). Check writes nothing and
// fails unless the node exists at the given version. Fenced writes use it:
// the leader puts Check(its election node) first in each write, so a leader
// whose session has expired, whose election node is therefore gone, fails
// with ErrNoNode instead of overwriting its successor's decisions.
//
// # 7. Errors
//
// Errors are wrapped with the backend, operation and path; test them with
// errors.Is against the variables in errors.go, which say which are worth a
// retry. A canceled context returns the context's error; for a write, as with
// ErrConnectionLoss, the outcome is then unknown on ZooKeeper.
package store
