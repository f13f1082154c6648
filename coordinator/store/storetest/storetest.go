// Package storetest is the conformance suite every store.Store backend
// passes: the embedded store (memory and file) and ZooKeeper run the same
// tests, so coordinator code that works on one works on the other.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

func testCreateGet(t *testing.T, newStore NewStore, _ Expire) {
	ctx, s := testCtx(t), newStore(t)
	made := of(s.Create(ctx, "/a", []byte("hello"), 0)).ok(t)
	if made != "/a" {
		t.Fatalf("Create returned %q, want /a", made)
	}
	data, st := of2(s.Get(ctx, "/a")).ok(t)
	if string(data) != "hello" {
		t.Fatalf("Get data %q, want hello", data)
	}
	if st.Version != 0 || st.DataLength != 5 || st.NumChildren != 0 || st.EphemeralOwner != 0 {
		t.Fatalf("new node stat %+v, want version 0, 5 bytes, no children, not ephemeral", st)
	}
	if st.Ctime.IsZero() || time.Since(st.Ctime) > time.Hour || time.Until(st.Ctime) > time.Hour {
		t.Fatalf("Ctime %v is not now", st.Ctime)
	}
	// A nested node, and empty data reads back empty.
	of(s.Create(ctx, "/a/b", nil, 0)).ok(t)
	data, _ = of2(s.Get(ctx, "/a/b")).ok(t)
	if len(data) != 0 {
		t.Fatalf("empty node reads %q", data)
	}
	_, st = of2(s.Get(ctx, "/a")).ok(t)
	if st.NumChildren != 1 || st.CVersion != 1 {
		t.Fatalf("parent stat %+v, want 1 child, cversion 1", st)
	}

	_, err := s.Create(ctx, "/a", nil, 0)
	wantErr(t, err, store.ErrNodeExists, "create existing")
	_, err = s.Create(ctx, "/", nil, 0)
	wantErr(t, err, store.ErrNodeExists, "create root")
	_, err = s.Create(ctx, "/missing/child", nil, 0)
	wantErr(t, err, store.ErrNoNode, "create without parent")
	_, _, err = s.Get(ctx, "/nope")
	wantErr(t, err, store.ErrNoNode, "get missing")

	ok, st, err := s.Exists(ctx, "/a")
	if err != nil || !ok || st.NumChildren != 1 {
		t.Fatalf("Exists(/a) = %v, %+v, %v; want true with 1 child", ok, st, err)
	}
	ok, _, err = s.Exists(ctx, "/nope")
	if err != nil || ok {
		t.Fatalf("Exists(/nope) = %v, %v; want false, nil", ok, err)
	}

	// The caller may reuse its buffer: the store keeps its own copy.
	buf := []byte("orig")
	of(s.Create(ctx, "/copy", buf, 0)).ok(t)
	copy(buf, "XXXX")
	data, _ = of2(s.Get(ctx, "/copy")).ok(t)
	if string(data) != "orig" {
		t.Fatalf("store kept the caller's buffer: read %q", data)
	}

	// Root always exists and lists what was made.
	kids := of(s.Children(ctx, "/")).ok(t)
	if !slices.Equal(kids, []string{"a", "copy"}) {
		t.Fatalf("Children(/) = %v, want [a copy]", kids)
	}
}

func testInvalidPaths(t *testing.T, newStore NewStore, _ Expire) {
	ctx, s := testCtx(t), newStore(t)
	for _, p := range []string{"", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/..", "/a\x00b", "/a\x01b"} {
		_, err := s.Create(ctx, p, nil, 0)
		wantErr(t, err, store.ErrInvalidPath, fmt.Sprintf("create %q", p))
		_, _, err = s.Get(ctx, p)
		wantErr(t, err, store.ErrInvalidPath, fmt.Sprintf("get %q", p))
	}
	// Dots inside a name are fine.
	of(s.Create(ctx, "/a.b..c", nil, 0)).ok(t)
	of(s.Create(ctx, "/ünïcode-名前", nil, 0)).ok(t)
}

func testSetVersions(t *testing.T, newStore NewStore, _ Expire) {
	ctx, s := testCtx(t), newStore(t)
	of(s.Create(ctx, "/n", []byte("v0"), 0)).ok(t)
	st := of(s.Set(ctx, "/n", []byte("v1"), store.AnyVersion)).ok(t)
	if st.Version != 1 || st.DataLength != 2 {
		t.Fatalf("after Set(any): %+v, want version 1", st)
	}
	_, err := s.Set(ctx, "/n", []byte("stale"), 0)
	wantErr(t, err, store.ErrBadVersion, "set with stale version")
	st = of(s.Set(ctx, "/n", []byte("v2-longer"), 1)).ok(t)
	if st.Version != 2 || st.DataLength != 9 {
		t.Fatalf("after Set(1): %+v, want version 2, 9 bytes", st)
	}
	data, st := of2(s.Get(ctx, "/n")).ok(t)
	if string(data) != "v2-longer" || st.Version != 2 {
		t.Fatalf("Get = %q %+v after the stale Set; the stale data must not be there", data, st)
	}
	if st.Mtime.Before(st.Ctime) {
		t.Fatalf("Mtime %v before Ctime %v", st.Mtime, st.Ctime)
	}
	_, err = s.Set(ctx, "/missing", nil, store.AnyVersion)
	wantErr(t, err, store.ErrNoNode, "set missing")
}

func testDelete(t *testing.T, newStore NewStore, _ Expire) {
	ctx, s := testCtx(t), newStore(t)
	of(s.Create(ctx, "/p", nil, 0)).ok(t)
	of(s.Create(ctx, "/p/c", nil, 0)).ok(t)
	of(s.Set(ctx, "/p/c", []byte("x"), store.AnyVersion)).ok(t)

	wantErr(t, s.Delete(ctx, "/p", store.AnyVersion), store.ErrNotEmpty, "delete with children")
	wantErr(t, s.Delete(ctx, "/p/c", 0), store.ErrBadVersion, "delete with stale version")
	noErr(t, s.Delete(ctx, "/p/c", 1))
	wantErr(t, s.Delete(ctx, "/p/c", store.AnyVersion), store.ErrNoNode, "delete twice")
	noErr(t, s.Delete(ctx, "/p", store.AnyVersion))
	if ok, _, _ := s.Exists(ctx, "/p"); ok {
		t.Fatal("/p exists after Delete")
	}
	wantErr(t, s.Delete(ctx, "/", store.AnyVersion), store.ErrBadArguments, "delete root")

	// A re-created node starts over at version 0.
	of(s.Create(ctx, "/p", nil, 0)).ok(t)
	if _, st := of2(s.Get(ctx, "/p")).ok(t); st.Version != 0 {
		t.Fatalf("re-created node at version %d", st.Version)
	}
}

func testChildrenSorted(t *testing.T, newStore NewStore, _ Expire) {
	ctx, s := testCtx(t), newStore(t)
	of(s.Create(ctx, "/d", nil, 0)).ok(t)
	for _, n := range []string{"c", "a10", "b", "a2", "a", "B"} {
		of(s.Create(ctx, "/d/"+n, nil, 0)).ok(t)
	}
	got := of(s.Children(ctx, "/d")).ok(t)
	if want := []string{"B", "a", "a10", "a2", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("Children = %v, want %v (byte order)", got, want)
	}
	got = of(s.Children(ctx, "/d/a")).ok(t)
	if got == nil || len(got) != 0 {
		t.Fatalf("Children of a leaf = %#v, want empty non-nil", got)
	}
	_, err := s.Children(ctx, "/nope")
	wantErr(t, err, store.ErrNoNode, "children of missing")
}

func testSequential(t *testing.T, newStore NewStore, _ Expire) {
	ctx, s := testCtx(t), newStore(t)
	of(s.Create(ctx, "/q1", nil, 0)).ok(t)
	of(s.Create(ctx, "/q2", nil, 0)).ok(t)
	var names []string
	for i := range 5 {
		made := of(s.Create(ctx, "/q1/run-", []byte{byte(i)}, store.Sequential)).ok(t)
		names = append(names, made)
		if i == 2 {
			// Other children move the parent's counter too: numbers grow
			// but need not be contiguous.
			of(s.Create(ctx, "/q1/plain", nil, 0)).ok(t)
			noErr(t, s.Delete(ctx, "/q1/plain", store.AnyVersion))
		}
	}
	if names[0] != "/q1/run-0000000000" {
		t.Fatalf("first sequential name %q, want /q1/run-0000000000", names[0])
	}
	last := int64(-1)
	for _, n := range names {
		seq, ok := store.Sequence(n)
		if !ok || len(store.Base(n)) != len("run-")+10 {
			t.Fatalf("name %q has no 10-digit sequence", n)
		}
		if seq <= last {
			t.Fatalf("sequence went from %d to %d in %v", last, seq, names)
		}
		last = seq
	}
	// Counters are per parent.
	if made := of(s.Create(ctx, "/q2/run-", nil, store.Sequential)).ok(t); made != "/q2/run-0000000000" {
		t.Fatalf("first name under another parent %q, want /q2/run-0000000000", made)
	}
	// A prefix ending in "/" makes names that are only the number, and
	// ephemeral sequential nodes number from the same counter.
	a := of(s.Create(ctx, "/q2/", nil, store.Sequential)).ok(t)
	b := of(s.Create(ctx, "/q2/e-", nil, store.Sequential|store.Ephemeral)).ok(t)
	if a != "/q2/0000000001" || b != "/q2/e-0000000002" {
		t.Fatalf("got %q and %q, want /q2/0000000001 and /q2/e-0000000002", a, b)
	}
	// At the root too (under a chroot, the name stays inside it).
	top := of(s.Create(ctx, "/", nil, store.Sequential)).ok(t)
	if _, ok := store.Sequence(top); !ok || store.Parent(top) != "/" || len(top) != 1+store.SequenceDigits {
		t.Fatalf("sequential create at the root made %q, want /NNNNNNNNNN", top)
	}
	if kids := of(s.Children(ctx, "/")).ok(t); !slices.Contains(kids, top[1:]) {
		t.Fatalf("root children %v lack %s", kids, top)
	}
	// The number is in the name the caller keeps; the data is untouched.
	data, _ := of2(s.Get(ctx, names[3])).ok(t)
	if !bytes.Equal(data, []byte{3}) {
		t.Fatalf("%s holds %v, want [3]", names[3], data)
	}
}

func testEphemeralClose(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	a, b := newStore(t), newStore(t)
	of(a.Create(ctx, "/live", nil, 0)).ok(t)
	of(a.Create(ctx, "/live/node-a", []byte("a"), store.Ephemeral)).ok(t)
	of(a.Create(ctx, "/persistent", nil, 0)).ok(t)

	ok, st, err := b.Exists(ctx, "/live/node-a")
	if err != nil || !ok {
		t.Fatalf("other session does not see the ephemeral node: %v %v", ok, err)
	}
	if st.EphemeralOwner == 0 {
		t.Fatalf("ephemeral node has EphemeralOwner 0")
	}
	_, err = a.Create(ctx, "/live/node-a/child", nil, 0)
	wantErr(t, err, store.ErrNoChildrenForEphemerals, "child of an ephemeral node")

	_, watch := of2(b.ChildrenW(ctx, "/live")).ok(t)
	noErr(t, a.Close())
	waitEvent(t, watch, store.EventChildrenChanged, "/live")
	if ok, _, _ := b.Exists(ctx, "/live/node-a"); ok {
		t.Fatal("ephemeral node outlived its session's Close")
	}
	if ok, _, _ := b.Exists(ctx, "/persistent"); !ok {
		t.Fatal("persistent node went with the session that made it")
	}
}

func testEphemeralExpiry(t *testing.T, newStore NewStore, expire Expire) {
	ctx := testCtx(t)
	a, b := newStore(t), newStore(t)
	events := a.SessionEvents(ctx)
	first := <-events
	if first.State != store.Connected || first.SessionID == 0 {
		t.Fatalf("first session event %+v, want connected with an ID", first)
	}

	of(a.Create(ctx, "/nodes", nil, 0)).ok(t)
	of(a.Create(ctx, "/nodes/a", nil, store.Ephemeral)).ok(t)
	of(a.Create(ctx, "/kept", nil, 0)).ok(t)
	_, st := of2(b.Get(ctx, "/nodes/a")).ok(t)
	if st.EphemeralOwner != first.SessionID {
		t.Fatalf("EphemeralOwner %d, want the session ID %d", st.EphemeralOwner, first.SessionID)
	}

	_, _, othersWatch := of3(b.ExistsW(ctx, "/nodes/a")).ok(t)
	_, _, ownWatch := of3(a.GetW(ctx, "/kept")).ok(t)

	expire(t, a)

	waitEvent(t, othersWatch, store.EventDeleted, "/nodes/a")
	ev := waitEvent(t, ownWatch, store.EventSessionLost, "/kept")
	if !errors.Is(ev.Err, store.ErrSessionExpired) {
		t.Fatalf("own watch ended with %v, want ErrSessionExpired", ev.Err)
	}
	if ok, _, _ := b.Exists(ctx, "/nodes/a"); ok {
		t.Fatal("ephemeral node outlived its session's expiry")
	}
	if ok, _, _ := b.Exists(ctx, "/kept"); !ok {
		t.Fatal("persistent node went with the expired session")
	}

	// The store reports the expiry and carries on with a new session.
	gotExpired := false
	for ev := range events {
		if ev.State == store.Expired {
			if ev.SessionID != first.SessionID {
				t.Fatalf("expired event for session %d, want %d", ev.SessionID, first.SessionID)
			}
			gotExpired = true
		}
		if ev.State == store.Connected {
			if !gotExpired {
				t.Fatalf("connected %d before the expiry was reported", ev.SessionID)
			}
			if ev.SessionID == first.SessionID || ev.SessionID == 0 {
				t.Fatalf("connected again with session %d, want a new one", ev.SessionID)
			}
			break
		}
	}
	if !gotExpired {
		t.Fatal("session events ended without an expiry")
	}
	// The caller re-registers: the same name is free and usable again.
	of(a.Create(ctx, "/nodes/a", nil, store.Ephemeral)).ok(t)
	if ok, _, _ := b.Exists(ctx, "/nodes/a"); !ok {
		t.Fatal("re-registered node not visible")
	}
}

func testWatchData(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s, other := newStore(t), newStore(t)
	of(s.Create(ctx, "/w", []byte("0"), 0)).ok(t)

	data, st, ch := of3(s.GetW(ctx, "/w")).ok(t)
	if string(data) != "0" || st.Version != 0 {
		t.Fatalf("GetW read %q %+v", data, st)
	}
	// A child's creation is not a change of the node's data.
	of(other.Create(ctx, "/w/child", nil, 0)).ok(t)
	noEvent(t, ch, "GetW after a child was created")
	of(other.Set(ctx, "/w", []byte("1"), store.AnyVersion)).ok(t)
	waitEvent(t, ch, store.EventDataChanged, "/w")

	// One-shot: a later change needs a new watch, and the new watch sees it.
	_, _, ch = of3(s.GetW(ctx, "/w")).ok(t)
	noErr(t, other.Delete(ctx, "/w/child", store.AnyVersion))
	noErr(t, other.Delete(ctx, "/w", store.AnyVersion))
	waitEvent(t, ch, store.EventDeleted, "/w")

	_, _, _, err := s.GetW(ctx, "/w")
	wantErr(t, err, store.ErrNoNode, "GetW on a missing node")
}

func testWatchExists(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s, other := newStore(t), newStore(t)

	ok, _, ch := of3(s.ExistsW(ctx, "/x")).ok(t)
	if ok {
		t.Fatal("/x exists in a fresh tree")
	}
	of(other.Create(ctx, "/x", nil, 0)).ok(t)
	waitEvent(t, ch, store.EventCreated, "/x")

	ok, _, ch = of3(s.ExistsW(ctx, "/x")).ok(t)
	if !ok {
		t.Fatal("ExistsW does not see /x")
	}
	of(other.Set(ctx, "/x", []byte("d"), store.AnyVersion)).ok(t)
	waitEvent(t, ch, store.EventDataChanged, "/x")

	_, _, ch = of3(s.ExistsW(ctx, "/x")).ok(t)
	noErr(t, other.Delete(ctx, "/x", store.AnyVersion))
	waitEvent(t, ch, store.EventDeleted, "/x")

	// Several watches on one node all fire, each once.
	_, _, ch1 := of3(s.ExistsW(ctx, "/y")).ok(t)
	_, _, ch2 := of3(other.ExistsW(ctx, "/y")).ok(t)
	of(s.Create(ctx, "/y", nil, 0)).ok(t)
	waitEvent(t, ch1, store.EventCreated, "/y")
	waitEvent(t, ch2, store.EventCreated, "/y")
}

func testWatchChildren(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s, other := newStore(t), newStore(t)
	of(s.Create(ctx, "/c", nil, 0)).ok(t)
	kids, ch := of2(s.ChildrenW(ctx, "/c")).ok(t)
	if len(kids) != 0 {
		t.Fatalf("fresh node has children %v", kids)
	}
	of(other.Create(ctx, "/c/1", nil, 0)).ok(t)
	waitEvent(t, ch, store.EventChildrenChanged, "/c")

	kids, ch = of2(s.ChildrenW(ctx, "/c")).ok(t)
	if !slices.Equal(kids, []string{"1"}) {
		t.Fatalf("children %v, want [1]", kids)
	}
	of(other.Set(ctx, "/c/1", []byte("data"), store.AnyVersion)).ok(t)
	of(other.Set(ctx, "/c", []byte("own data"), store.AnyVersion)).ok(t)
	noEvent(t, ch, "ChildrenW after data changes")
	noErr(t, other.Delete(ctx, "/c/1", store.AnyVersion))
	waitEvent(t, ch, store.EventChildrenChanged, "/c")

	_, ch = of2(s.ChildrenW(ctx, "/c")).ok(t)
	noErr(t, other.Delete(ctx, "/c", store.AnyVersion))
	waitEvent(t, ch, store.EventDeleted, "/c")

	_, _, err := s.ChildrenW(ctx, "/c")
	wantErr(t, err, store.ErrNoNode, "ChildrenW on a missing node")
}

func testWatchClose(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s := newStore(t)
	of(s.Create(ctx, "/n", nil, 0)).ok(t)
	_, _, ch := of3(s.GetW(ctx, "/n")).ok(t)
	_, _, ch2 := of3(s.ExistsW(ctx, "/missing")).ok(t)
	noErr(t, s.Close())
	for _, c := range []struct {
		ch   <-chan store.Event
		path string
	}{{ch, "/n"}, {ch2, "/missing"}} {
		ev := waitEvent(t, c.ch, store.EventSessionLost, c.path)
		if !errors.Is(ev.Err, store.ErrClosed) {
			t.Fatalf("watch on closed store ended with %v, want ErrClosed", ev.Err)
		}
	}
}

func testMultiAtomic(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s, other := newStore(t), newStore(t)
	of(s.Create(ctx, "/m", []byte("orig"), 0)).ok(t)
	of(s.Create(ctx, "/m/old", nil, 0)).ok(t)
	_, _, watch := of3(other.GetW(ctx, "/m")).ok(t)

	cases := []struct {
		name string
		bad  store.Op
		want error
	}{
		{"check version", store.CheckOp("/m", 7), store.ErrBadVersion},
		{"check missing", store.CheckOp("/m/none", store.AnyVersion), store.ErrNoNode},
		{"create made earlier in the Multi", store.CreateOp("/m/new", nil, 0), store.ErrNodeExists},
		{"set version", store.SetOp("/m", nil, 0), store.ErrBadVersion}, // at 1 after the Set above
		{"delete not empty", store.DeleteOp("/m", store.AnyVersion), store.ErrNotEmpty},
	}
	for _, c := range cases {
		ops := []store.Op{
			store.CreateOp("/m/new", []byte("n"), 0),
			store.SetOp("/m", []byte("changed"), store.AnyVersion),
			store.DeleteOp("/m/old", store.AnyVersion),
			store.CreateOp("/m/seq-", nil, store.Sequential),
		}
		// The failing op goes after the writes, so they were applied and
		// must be undone.
		ops = append(ops, c.bad)
		res, err := s.Multi(ctx, ops...)
		wantErr(t, err, c.want, c.name)
		var me *store.MultiError
		if !errors.As(err, &me) || me.Index != len(ops)-1 {
			t.Fatalf("%s: error %v is not a *MultiError naming op %d", c.name, err, len(ops)-1)
		}
		if res != nil {
			t.Fatalf("%s: failed Multi returned results %v", c.name, res)
		}
		kids := of(other.Children(ctx, "/m")).ok(t)
		if !slices.Equal(kids, []string{"old"}) {
			t.Fatalf("%s: children after a failed Multi %v, want [old]", c.name, kids)
		}
		data, st := of2(other.Get(ctx, "/m")).ok(t)
		if string(data) != "orig" || st.Version != 0 {
			t.Fatalf("%s: /m = %q v%d after a failed Multi, want orig v0", c.name, data, st.Version)
		}
	}
	noEvent(t, watch, "watch after only failed Multis")
	// A failed Multi does not use up sequence numbers' meaning: the next
	// sequential create still gets a fresh, valid name.
	made := of(s.Create(ctx, "/m/seq-", nil, store.Sequential)).ok(t)
	if _, ok := store.Sequence(made); !ok {
		t.Fatalf("sequential name %q after failed Multis", made)
	}
}

func testMultiResults(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s, other := newStore(t), newStore(t)
	of(s.Create(ctx, "/r", nil, 0)).ok(t)
	of(s.Create(ctx, "/r/gone", nil, 0)).ok(t)
	_, childWatch := of2(other.ChildrenW(ctx, "/r")).ok(t)

	res, err := s.Multi(ctx,
		store.CheckOp("/r", 0),
		store.CreateOp("/r/job", []byte("spec"), 0),
		store.CreateOp("/r/q-", nil, store.Sequential),
		store.SetOp("/r/job", []byte("spec2"), 0),
		store.DeleteOp("/r/gone", 0),
		store.CreateOp("/r/eph", nil, store.Ephemeral),
	)
	noErr(t, err)
	if len(res) != 6 {
		t.Fatalf("%d results for 6 ops", len(res))
	}
	if res[1].Path != "/r/job" || res[2].Path != "/r/q-0000000002" || res[4].Path != "/r/gone" {
		t.Fatalf("result paths %q %q %q, want /r/job /r/q-0000000002 /r/gone", res[1].Path, res[2].Path, res[4].Path)
	}
	if res[3].Stat.Version != 1 || res[3].Stat.DataLength != 5 {
		t.Fatalf("Set result stat %+v, want version 1, 5 bytes", res[3].Stat)
	}
	kids := of(other.Children(ctx, "/r")).ok(t)
	if !slices.Equal(kids, []string{"eph", "job", "q-0000000002"}) {
		t.Fatalf("children after Multi %v", kids)
	}
	if _, st := of2(other.Get(ctx, "/r/eph")).ok(t); st.EphemeralOwner == 0 {
		t.Fatal("ephemeral create in a Multi made a persistent node")
	}
	waitEvent(t, childWatch, store.EventChildrenChanged, "/r")

	res, err = s.Multi(ctx)
	if err != nil || len(res) != 0 {
		t.Fatalf("empty Multi = %v, %v", res, err)
	}
}

// testMultiFencing is the leader's pattern: every write checks the leader's
// election node, so a leader whose session expired cannot write.
func testMultiFencing(t *testing.T, newStore NewStore, expire Expire) {
	ctx := testCtx(t)
	leader, other := newStore(t), newStore(t)
	of(leader.Create(ctx, "/election", nil, 0)).ok(t)
	of(leader.Create(ctx, "/assign", nil, 0)).ok(t)
	me := of(leader.Create(ctx, "/election/n-", nil, store.Ephemeral|store.Sequential)).ok(t)
	_, st := of2(leader.Get(ctx, me)).ok(t)

	_, err := leader.Multi(ctx, store.CheckOp(me, st.Version), store.CreateOp("/assign/p1", nil, 0))
	noErr(t, err)

	expire(t, leader)
	_, err = leader.Multi(ctx, store.CheckOp(me, st.Version), store.CreateOp("/assign/p2", nil, 0))
	wantErr(t, err, store.ErrNoNode, "fenced write after expiry")
	if ok, _, _ := other.Exists(ctx, "/assign/p2"); ok {
		t.Fatal("a stale leader's fenced write went through")
	}
}

func testTreeHelpers(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s, other := newStore(t), newStore(t)
	made := of(store.CreateAll(ctx, s, "/a/b/c/leaf", []byte("x"), 0)).ok(t)
	if made != "/a/b/c/leaf" {
		t.Fatalf("CreateAll returned %q", made)
	}
	data, _ := of2(s.Get(ctx, "/a/b/c/leaf")).ok(t)
	if string(data) != "x" {
		t.Fatalf("leaf holds %q", data)
	}
	_, err := store.CreateAll(ctx, s, "/a/b/c/leaf", nil, 0)
	wantErr(t, err, store.ErrNodeExists, "CreateAll of an existing node")
	made = of(store.CreateAll(ctx, s, "/a/q/item-", nil, store.Sequential|store.Ephemeral)).ok(t)
	if made != "/a/q/item-0000000000" {
		t.Fatalf("CreateAll sequential made %q", made)
	}
	of(s.Create(ctx, "/a/b/other", nil, 0)).ok(t)
	of(s.Create(ctx, "/a/b/eph", nil, store.Ephemeral)).ok(t)
	of(s.Create(ctx, "/keep", nil, 0)).ok(t)

	_, watch := of2(other.ChildrenW(ctx, "/")).ok(t)
	noErr(t, store.DeleteAll(ctx, s, "/a"))
	if ok, _, _ := other.Exists(ctx, "/a"); ok {
		t.Fatal("/a exists after DeleteAll")
	}
	waitEvent(t, watch, store.EventChildrenChanged, "/")
	noErr(t, store.DeleteAll(ctx, s, "/a")) // already gone: fine
	noErr(t, store.DeleteAll(ctx, s, "/"))
	if kids := of(other.Children(ctx, "/")).ok(t); len(kids) != 0 {
		t.Fatalf("DeleteAll(/) left %v", kids)
	}
	if ok, _, _ := other.Exists(ctx, "/"); !ok {
		t.Fatal("DeleteAll(/) removed the root")
	}
}

func testConcurrentCreate(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	sessions := []store.Store{newStore(t), newStore(t), newStore(t)}
	const rounds, racers = 10, 6
	for r := range rounds {
		path := fmt.Sprintf("/race-%d", r)
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			mu     sync.Mutex
			wins   []int
			others []error
		)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := sessions[i%len(sessions)].Create(ctx, path, []byte{byte(i)}, 0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins = append(wins, i)
				case !errors.Is(err, store.ErrNodeExists):
					others = append(others, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(others) > 0 {
			t.Fatalf("round %d: unexpected errors %v", r, others)
		}
		if len(wins) != 1 {
			t.Fatalf("round %d: %d creates of %s succeeded (%v), want exactly 1", r, len(wins), path, wins)
		}
		data, _ := of2(sessions[0].Get(ctx, path)).ok(t)
		if len(data) != 1 || int(data[0]) != wins[0] {
			t.Fatalf("round %d: node holds %v, but racer %d won", r, data, wins[0])
		}
	}
}

func testConcurrentSequential(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	sessions := []store.Store{newStore(t), newStore(t)}
	of(sessions[0].Create(ctx, "/seq", nil, 0)).ok(t)
	const workers, each = 4, 15
	names := make([][]string, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sessions[w%len(sessions)]
			for range each {
				made, err := s.Create(ctx, "/seq/n-", nil, store.Sequential)
				if err != nil {
					errs <- err
					return
				}
				names[w] = append(names[w], made)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := make(map[int64]string)
	for w, ns := range names {
		last := int64(-1)
		for _, n := range ns {
			seq, ok := store.Sequence(n)
			if !ok {
				t.Fatalf("bad sequential name %q", n)
			}
			if prev, dup := seen[seq]; dup {
				t.Fatalf("sequence %d given twice: %s and %s", seq, prev, n)
			}
			seen[seq] = n
			if seq <= last {
				t.Fatalf("worker %d saw its numbers go from %d to %d", w, last, seq)
			}
			last = seq
		}
	}
	kids := of(sessions[1].Children(ctx, "/seq")).ok(t)
	if len(kids) != workers*each || len(seen) != workers*each {
		t.Fatalf("%d children, %d distinct numbers, want %d", len(kids), len(seen), workers*each)
	}
	// With nothing but these creates under the parent, the numbers are
	// exactly 0..n-1.
	for i := range int64(workers * each) {
		if _, ok := seen[i]; !ok {
			t.Fatalf("number %d missing", i)
		}
	}
}

func testSessionEvents(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s := newStore(t)
	events := s.SessionEvents(ctx)
	first := <-events
	if first.State != store.Connected || first.SessionID == 0 {
		t.Fatalf("first event %+v, want connected with an ID", first)
	}
	// An ephemeral node's owner is the session the events name.
	of(s.Create(ctx, "/e", nil, store.Ephemeral)).ok(t)
	if _, st := of2(s.Get(ctx, "/e")).ok(t); st.EphemeralOwner != first.SessionID {
		t.Fatalf("EphemeralOwner %d, session events say %d", st.EphemeralOwner, first.SessionID)
	}
	// A subscriber that never reads does not hold anything up.
	_ = s.SessionEvents(ctx)

	noErr(t, s.Close())
	var last store.SessionEvent
	timeout := time.After(eventTimeout)
	for done := false; !done; {
		select {
		case ev, ok := <-events:
			if !ok {
				done = true
				break
			}
			last = ev
		case <-timeout:
			t.Fatal("session events not closed after Close")
		}
	}
	if last.State != store.Closed {
		t.Fatalf("last session event %+v, want closed", last)
	}
	ev, ok := <-s.SessionEvents(ctx)
	if !ok || ev.State != store.Closed {
		t.Fatalf("subscribing after Close: %+v %v, want one closed event", ev, ok)
	}
	noErr(t, s.Close()) // twice is fine
}

func testClosedAndCanceled(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s := newStore(t)
	of(s.Create(ctx, "/n", nil, 0)).ok(t)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Create(canceled, "/m", nil, 0)
	wantErr(t, err, context.Canceled, "create with a canceled context")
	_, _, err = s.Get(canceled, "/n")
	wantErr(t, err, context.Canceled, "get with a canceled context")
	if ok, _, _ := s.Exists(ctx, "/m"); ok {
		t.Fatal("create with a canceled context went through")
	}

	noErr(t, s.Close())
	_, err = s.Create(ctx, "/m", nil, 0)
	wantErr(t, err, store.ErrClosed, "create after Close")
	_, _, err = s.Get(ctx, "/n")
	wantErr(t, err, store.ErrClosed, "get after Close")
	_, err = s.Multi(ctx, store.CheckOp("/n", store.AnyVersion))
	wantErr(t, err, store.ErrClosed, "multi after Close")
	_, _, _, err = s.GetW(ctx, "/n")
	wantErr(t, err, store.ErrClosed, "watch after Close")
}

func testDataTooLarge(t *testing.T, newStore NewStore, _ Expire) {
	ctx := testCtx(t)
	s := newStore(t)
	big := make([]byte, store.MaxDataSize+1)
	_, err := s.Create(ctx, "/big", big, 0)
	wantErr(t, err, store.ErrDataTooLarge, "create with too much data")
	of(s.Create(ctx, "/big", big[:store.MaxDataSize], 0)).ok(t)
	_, err = s.Set(ctx, "/big", big, store.AnyVersion)
	wantErr(t, err, store.ErrDataTooLarge, "set with too much data")
	half := big[:store.MaxDataSize/2+1]
	_, err = s.Multi(ctx, store.SetOp("/big", half, store.AnyVersion), store.CreateOp("/big2", half, 0))
	wantErr(t, err, store.ErrDataTooLarge, "multi with too much data in all")
	// The store still works: nothing was lost on the connection.
	data, _ := of2(s.Get(ctx, "/big")).ok(t)
	if len(data) != store.MaxDataSize {
		t.Fatalf("read back %d bytes, want %d", len(data), store.MaxDataSize)
	}
}
