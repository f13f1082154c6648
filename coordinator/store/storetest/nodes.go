package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/datashift/datashift/coordinator/store"
)

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
