package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/datashift/datashift/coordinator/store"
)

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
