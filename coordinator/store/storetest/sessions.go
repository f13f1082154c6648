package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/datashift/datashift/coordinator/store"
)

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
