// Package storetest is the conformance suite every store.Store backend
// passes: the embedded store (memory and file) and ZooKeeper run the same
// tests, so coordinator code that works on one works on the other.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/datashift/datashift/coordinator/store"
)

// NewStore opens a new session. Sessions opened with the same t share one
// tree, and each t gets a fresh, empty tree: the suite relies on both. It
// must be safe to call from parallel tests and should close the store in
// t.Cleanup.
type NewStore func(t *testing.T) store.Store

// Expire ends s's current session as a server does when it stops hearing
// from the client. When it returns, the session's ephemeral nodes are gone
// for every other session, and s is on a new session.
type Expire func(t *testing.T, s store.Store)

// Run runs the suite as parallel subtests of t.
func Run(t *testing.T, newStore NewStore, expire Expire) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore NewStore, expire Expire)
	}{
		{"CreateGet", testCreateGet},
		{"InvalidPaths", testInvalidPaths},
		{"SetVersions", testSetVersions},
		{"Delete", testDelete},
		{"ChildrenSorted", testChildrenSorted},
		{"Sequential", testSequential},
		{"EphemeralVisibleUntilClose", testEphemeralClose},
		{"EphemeralGoneOnExpiry", testEphemeralExpiry},
		{"WatchData", testWatchData},
		{"WatchExists", testWatchExists},
		{"WatchChildren", testWatchChildren},
		{"WatchEndsOnClose", testWatchClose},
		{"MultiAllOrNothing", testMultiAtomic},
		{"MultiResults", testMultiResults},
		{"MultiFencing", testMultiFencing},
		{"CreateAllDeleteAll", testTreeHelpers},
		{"ConcurrentCreateOneWins", testConcurrentCreate},
		{"ConcurrentSequentialUnique", testConcurrentSequential},
		{"SessionEvents", testSessionEvents},
		{"ClosedAndCanceled", testClosedAndCanceled},
		{"DataTooLarge", testDataTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore, expire)
		})
	}
}

// Long enough for a loaded CI machine, short enough to fail in a test run.
const (
	eventTimeout = 10 * time.Second
	// quiet is how long a watch must stay silent to count as not fired. A
	// local ZooKeeper delivers in milliseconds.
	quiet = 300 * time.Millisecond
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// of(call()).ok(t) returns call's value, failing t on its error: Go does
// not let a multi-value call share an argument list with t.
func of[T any](v T, err error) got[T] { return got[T]{v, err} }

type got[T any] struct {
	v   T
	err error
}

func (g got[T]) ok(t *testing.T) T {
	t.Helper()
	if g.err != nil {
		t.Fatal(g.err)
	}
	return g.v
}

func of2[A, B any](a A, b B, err error) got2[A, B] { return got2[A, B]{a, b, err} }

type got2[A, B any] struct {
	a   A
	b   B
	err error
}

func (g got2[A, B]) ok(t *testing.T) (A, B) {
	t.Helper()
	if g.err != nil {
		t.Fatal(g.err)
	}
	return g.a, g.b
}

func of3[A, B, C any](a A, b B, c C, err error) got3[A, B, C] { return got3[A, B, C]{a, b, c, err} }

type got3[A, B, C any] struct {
	a   A
	b   B
	c   C
	err error
}

func (g got3[A, B, C]) ok(t *testing.T) (A, B, C) {
	t.Helper()
	if g.err != nil {
		t.Fatal(g.err)
	}
	return g.a, g.b, g.c
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// waitEvent reads the one event of a watch and checks the channel closes.
func waitEvent(t *testing.T, ch <-chan store.Event, typ store.EventType, path string) store.Event {
	t.Helper()
	if ch == nil {
		t.Fatal("watch channel is nil")
	}
	var ev store.Event
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatalf("watch on %s closed without an event, want %v", path, typ)
		}
		ev = e
	case <-time.After(eventTimeout):
		t.Fatalf("no %v event on %s within %v", typ, path, eventTimeout)
	}
	if ev.Type != typ || ev.Path != path {
		t.Fatalf("got event %v on %s (err %v), want %v on %s", ev.Type, ev.Path, ev.Err, typ, path)
	}
	select {
	case e, ok := <-ch:
		if ok {
			t.Fatalf("second event %v on %s: watches are one-shot", e.Type, e.Path)
		}
	case <-time.After(eventTimeout):
		t.Fatalf("watch channel on %s not closed after its event", path)
	}
	return ev
}

func noEvent(t *testing.T, ch <-chan store.Event, what string) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		t.Fatalf("%s: watch fired (%v on %s, open=%v), want no event", what, ev.Type, ev.Path, ok)
	case <-time.After(quiet):
	}
}
