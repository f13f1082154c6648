package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/datashift/datashift/coordinator/store"
)

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
	// The rolled-back sequential creates leave the counter usable: the next
	// one still gets a valid name.
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
