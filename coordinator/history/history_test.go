package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// open gives the test a history under a key prefix of its own (removed
// when the test ends), and that prefix.
func open(t *testing.T, keep int) (*Redis, string, string) {
	t.Helper()
	addr, prefix := testenv.RedisPrefix(t)
	url := "redis://" + addr + "/0"
	h, err := OpenRedis(context.Background(), url, prefix, keep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, url, prefix
}

func runAt(job string, i int, state string) *engine.RunRecord {
	started := t0.Add(time.Duration(i) * time.Minute)
	return &engine.RunRecord{
		Job: job, ID: engine.NewRunID(started), State: state, Started: started,
		Finished: started.Add(30 * time.Second), SpecHash: "h1", Scheme: "int ranges", Reason: "target rows",
		Rows: int64(100 * i), Bytes: int64(1000 * i),
	}
}

func parts(rows ...int64) []engine.PartitionRecord {
	var out []engine.PartitionRecord
	for i, r := range rows {
		lo, hi := connectors.Key{int64(i * 10)}, connectors.Key{int64(i*10 + 10)}
		out = append(out, engine.PartitionRecord{
			ID: fmt.Sprintf("p%03d", i), Range: connectors.Range{Lo: lo, Hi: hi}, EstRows: r,
			State: engine.Done, Owner: "node-1", Attempts: 1, Lease: 7,
			Checkpoint: engine.Checkpoint{Rows: r, Bytes: r * 10, Done: true},
		})
	}
	return out
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func ids(runs []engine.RunRecord) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

// keys returns every key under prefix.
func keys(t *testing.T, h *Redis, prefix string) []string {
	t.Helper()
	ks, err := h.client.Keys(context.Background(), redisGlob(prefix)+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func redisGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	h, _, prefix := open(t, 0)
	run := runAt("orders", 1, engine.RunFailed)
	run.Error = "partition p001: connection reset"
	run.CursorFrom, run.CursorUpTo = connectors.Key{int64(5)}, connectors.Key{int64(99)}
	ps := parts(40, 0, 60)
	ps[1].State, ps[1].Attempts, ps[1].Error = engine.Failed, 3, "connection reset"
	ps[1].Checkpoint = engine.Checkpoint{Rows: 12, Bytes: 120, BadRows: 2, Error: "worker: connection reset"}
	ps[2].Checkpoint.Error = "seen by the worker"
	ps[2].Range = connectors.Range{Nulls: true}
	if err := h.Put(ctx, run, ps); err != nil {
		t.Fatal(err)
	}
	got, err := h.Get(ctx, "orders", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "run", got.Run, run)
	want := []Partition{
		{ID: "p000", Range: "[0, 10)", State: engine.Done, Owner: "node-1", Attempts: 1, Lease: 7, Rows: 40, Bytes: 400},
		{ID: "p001", Range: "[10, 20)", State: engine.Failed, Owner: "node-1", Attempts: 3, Lease: 7, Rows: 12, Bytes: 120, BadRows: 2, Error: "connection reset"},
		{ID: "p002", Range: "[NULL keys]", State: engine.Done, Owner: "node-1", Attempts: 1, Lease: 7, Rows: 60, Bytes: 600, Error: "seen by the worker"},
	}
	same(t, "partitions", got.Partitions, want)
	list, err := h.List(ctx, "orders", 10)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "list", list, []engine.RunRecord{*run})

	// The layout the package documents.
	ks := keys(t, h, prefix)
	if len(ks) != 2 {
		t.Fatalf("keys = %v, want the run's and the job's set", ks)
	}
	if n, err := h.client.Exists(ctx, prefix+"run:orders:"+run.ID, prefix+"runs:orders").Result(); err != nil || n != 2 {
		t.Fatalf("layout keys: %d, %v (have %v)", n, err, ks)
	}
	sc, err := h.client.ZScore(ctx, prefix+"runs:orders", run.ID).Result()
	if err != nil || int64(sc) != run.Started.UnixMicro() {
		t.Fatalf("score = %v, %v; want %d", sc, err, run.Started.UnixMicro())
	}

	// A run with no partitions (a refused trigger) has none.
	bare := runAt("orders", 2, engine.RunFailed)
	if err := h.Put(ctx, bare, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Get(ctx, "orders", bare.ID); err != nil || len(got.Partitions) != 0 {
		t.Fatalf("bare run = %+v, %v", got, err)
	}
}

func TestPutAgainReplaces(t *testing.T) {
	ctx := context.Background()
	h, _, prefix := open(t, 0)
	run := runAt("orders", 1, engine.RunFailed)
	run.Error = "boom"
	if err := h.Put(ctx, run, parts(10, 20, 30)); err != nil {
		t.Fatal(err)
	}
	other := runAt("orders", 2, engine.RunSucceeded)
	if err := h.Put(ctx, other, parts(5)); err != nil {
		t.Fatal(err)
	}
	// Continued and finished later under the same id.
	again := *run
	again.State, again.Error, again.Finished, again.Rows = engine.RunSucceeded, "", run.Finished.Add(time.Hour), 60
	if err := h.Put(ctx, &again, parts(10, 50)); err != nil {
		t.Fatal(err)
	}
	got, err := h.Get(ctx, "orders", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "run", got.Run, again)
	if len(got.Partitions) != 2 || got.Partitions[1].Rows != 50 {
		t.Fatalf("partitions = %+v", got.Partitions)
	}
	list, err := h.List(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "list", list, []engine.RunRecord{*other, again})
	if ks := keys(t, h, prefix); len(ks) != 3 {
		t.Fatalf("keys = %v", ks)
	}
}

func TestNewestFirst(t *testing.T) {
	ctx := context.Background()
	h, _, _ := open(t, 0)
	order := []int{3, 0, 4, 1, 2}
	runs := map[int]*engine.RunRecord{}
	for _, i := range order {
		runs[i] = runAt("orders", i, engine.RunSucceeded)
		if err := h.Put(ctx, runs[i], parts(1)); err != nil {
			t.Fatal(err)
		}
	}
	// Two runs started in the same microsecond: the later id first, as
	// ids sort.
	tie := runAt("orders", 4, engine.RunSucceeded)
	tie.ID = runs[4].ID[:len(runs[4].ID)-1] + "~"
	if err := h.Put(ctx, tie, nil); err != nil {
		t.Fatal(err)
	}
	list, err := h.List(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{tie.ID, runs[4].ID, runs[3].ID, runs[2].ID, runs[1].ID, runs[0].ID}
	same(t, "order", ids(list), want)
	list, err = h.List(ctx, "orders", 2)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "limit 2", ids(list), want[:2])
	list, err = h.List(ctx, "orders", 100)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "limit past the end", ids(list), want)
	if list, err := h.List(ctx, "nothing", 0); err != nil || len(list) != 0 {
		t.Fatalf("empty job: %v, %v", list, err)
	}
}

func TestTrimToKeep(t *testing.T) {
	ctx := context.Background()
	h, url, prefix := open(t, 3)
	var runs []*engine.RunRecord
	for i := range 6 {
		runs = append(runs, runAt("orders", 10+i, engine.RunSucceeded))
		if err := h.Put(ctx, runs[i], parts(1, 2)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, want ...*engine.RunRecord) {
		t.Helper()
		list, err := h.List(ctx, "orders", 0)
		if err != nil {
			t.Fatal(err)
		}
		var w []string
		for _, r := range want {
			w = append(w, r.ID)
		}
		same(t, what, ids(list), w)
		// No record outlives its place in the set.
		if ks := keys(t, h, prefix); len(ks) != len(want)+1 {
			t.Fatalf("%s: keys = %v", what, ks)
		}
	}
	check("after 6 puts", runs[5], runs[4], runs[3])
	for _, r := range runs[:3] {
		if _, err := h.Get(ctx, "orders", r.ID); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("trimmed run %s: %v", r.ID, err)
		}
	}

	// A run older than all that are kept is trimmed at once.
	old := runAt("orders", 0, engine.RunFailed)
	if err := h.Put(ctx, old, nil); err != nil {
		t.Fatal(err)
	}
	check("after an old run", runs[5], runs[4], runs[3])
	if _, err := h.Get(ctx, "orders", old.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("old run: %v", err)
	}

	// Putting a kept run again trims nothing.
	again := *runs[3]
	again.Rows = 7
	if err := h.Put(ctx, &again, nil); err != nil {
		t.Fatal(err)
	}
	check("after putting a kept run again", runs[5], runs[4], runs[3])

	// A kept run put again with a later start moves to the front.
	moved := *runs[3]
	moved.Started = runs[5].Started.Add(time.Minute)
	if err := h.Put(ctx, &moved, nil); err != nil {
		t.Fatal(err)
	}
	check("after moving a run", &moved, runs[5], runs[4])

	// A new run ahead of the others pushes the oldest out.
	newest := runAt("orders", 100, engine.RunSucceeded)
	if err := h.Put(ctx, newest, nil); err != nil {
		t.Fatal(err)
	}
	check("after a new run", newest, &moved, runs[5])

	// A history opened with a smaller keep trims to it on its next put.
	h1, err := OpenRedis(ctx, url, prefix, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	newer := runAt("orders", 101, engine.RunSucceeded)
	if err := h1.Put(ctx, newer, nil); err != nil {
		t.Fatal(err)
	}
	check("after keep 1", newer)
}

func TestTrimUnderConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	const keep, writers, each = 10, 8, 15
	h, _, prefix := open(t, keep)
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := h.Put(ctx, runAt("orders", i*writers+w, engine.RunSucceeded), nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := h.List(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != keep {
		t.Fatalf("kept %d runs, want %d", len(list), keep)
	}
	for i, r := range list {
		if want := t0.Add(time.Duration(writers*each-1-i) * time.Minute); !r.Started.Equal(want) {
			t.Fatalf("run %d started %v, want %v", i, r.Started, want)
		}
	}
	if ks := keys(t, h, prefix); len(ks) != keep+1 {
		t.Fatalf("%d keys, want %d", len(ks), keep+1)
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	h, _, _ := open(t, 0)
	if err := h.Put(ctx, runAt("orders", 1, engine.RunSucceeded), nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"orders", "20260301T120000.000000Z-000000"}, {"nojob", "r1"}} {
		e, err := h.Get(ctx, c[0], c[1])
		if !errors.Is(err, engine.ErrNotFound) || e != nil {
			t.Fatalf("Get(%q, %q) = %+v, %v; want not found", c[0], c[1], e, err)
		}
		if !strings.Contains(err.Error(), c[1]) {
			t.Fatalf("error does not say which run: %v", err)
		}
	}
	// Names that cannot be keys are refused, not looked up.
	if _, err := h.Get(ctx, "a:b", "r"); err == nil || errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("job with ':': %v", err)
	}
	if err := h.Put(ctx, &engine.RunRecord{Job: "orders"}, nil); err == nil {
		t.Fatal("put of a run without id: no error")
	}
}

func TestJobsNotMixed(t *testing.T) {
	ctx := context.Background()
	h, _, _ := open(t, 2)
	a := []*engine.RunRecord{runAt("orders", 1, engine.RunSucceeded), runAt("orders", 3, engine.RunSucceeded)}
	b := []*engine.RunRecord{runAt("orders.v2", 2, engine.RunFailed), runAt("orders.v2", 4, engine.RunSucceeded), runAt("orders.v2", 5, engine.RunSucceeded)}
	// Same run id in both jobs.
	b[0].ID = a[0].ID
	for _, r := range append(append([]*engine.RunRecord{}, a...), b...) {
		if err := h.Put(ctx, r, parts(int64(len(r.Job)))); err != nil {
			t.Fatal(err)
		}
	}
	la, err := h.List(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "orders", la, []engine.RunRecord{*a[1], *a[0]})
	lb, err := h.List(ctx, "orders.v2", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Trimming b's job left a's alone.
	same(t, "orders.v2", lb, []engine.RunRecord{*b[2], *b[1]})
	e, err := h.Get(ctx, "orders", a[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if e.Run.Job != "orders" || e.Partitions[0].Rows != int64(len("orders")) {
		t.Fatalf("orders' run = %+v", e)
	}
	if _, err := h.Get(ctx, "orders.v2", b[0].ID); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("trimmed run of orders.v2: %v", err)
	}
}

func TestPrefixIsolation(t *testing.T) {
	ctx := context.Background()
	h, url, prefix := open(t, 0)
	// A second history under another prefix (inside the test's own, so it
	// is cleaned up too).
	h2, err := OpenRedis(ctx, url, prefix+"other:", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	r1, r2 := runAt("orders", 1, engine.RunSucceeded), runAt("orders", 2, engine.RunSucceeded)
	if err := h.Put(ctx, r1, nil); err != nil {
		t.Fatal(err)
	}
	if err := h2.Put(ctx, r2, nil); err != nil {
		t.Fatal(err)
	}
	// h2 keeps 1 run: its trimming does not reach h's.
	if err := h2.Put(ctx, runAt("orders", 3, engine.RunSucceeded), nil); err != nil {
		t.Fatal(err)
	}
	l1, err := h.List(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "first prefix", ids(l1), []string{r1.ID})
	l2, err := h2.List(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(l2) != 1 || l2[0].ID == r1.ID {
		t.Fatalf("second prefix = %v", ids(l2))
	}
	if _, err := h2.Get(ctx, "orders", r1.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("other prefix sees the run: %v", err)
	}
	for _, k := range keys(t, h, prefix) {
		if !strings.HasPrefix(k, prefix) {
			t.Fatalf("key %q outside the prefix", k)
		}
	}
}

func TestDefaults(t *testing.T) {
	addr, _ := testenv.RedisPrefix(t)
	// Opened only: nothing is written under the default prefix.
	h, err := OpenRedis(context.Background(), "redis://"+addr+"/0", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.prefix != "datashift:" || h.keep != 1000 {
		t.Fatalf("prefix %q keep %d", h.prefix, h.keep)
	}
	if h.runKey("orders", "r1") != "datashift:run:orders:r1" || h.runsKey("orders") != "datashift:runs:orders" {
		t.Fatalf("keys %q %q", h.runKey("orders", "r1"), h.runsKey("orders"))
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	addr, _ := testenv.RedisPrefix(t)
	const secret = "S3cr3tPw"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	urls := []string{
		// Nothing listens there.
		"redis://user:" + secret + "@127.0.0.1:1/0",
		// A port that is no number, a host url.Parse refuses.
		"redis://:" + secret + "@127.0.0.1:port/0",
		"redis://user:" + secret + "@%zz/0",
		// A database that is no number, an unknown scheme.
		"redis://user:" + secret + "@" + addr + "/notadb",
		"http://user:" + secret + "@" + addr + "/0",
		// A user and password the server refuses (a password alone may
		// pass a server that has none).
		"redis://nobody:" + secret + "@" + addr + "/0",
		// In the query.
		"redis://" + addr + "/0?password=" + secret + "&dial_timeout=nope",
	}
	for _, u := range urls {
		h, err := OpenRedis(ctx, u, "", 0)
		if err == nil {
			h.Close()
			t.Fatalf("%s: opened", connectors.Redacted(u))
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the password is in the error: %v", err)
		}
		if !strings.Contains(err.Error(), "history") {
			t.Fatalf("error does not say what failed: %v", err)
		}
		t.Logf("%v", err)
	}
	if _, err := OpenRedis(ctx, "", "", 0); err == nil {
		t.Fatal("empty url: opened")
	}
}

func TestFailAfterOpenHidesPassword(t *testing.T) {
	// An error of a history already open says where, password hidden.
	h := &Redis{where: connectors.Redacted("redis://u:S3cr3tPw@h:6379/0")}
	err := h.fail("put", errors.New("dial redis://u:S3cr3tPw@h:6379/0: refused"))
	if strings.Contains(err.Error(), "S3cr3tPw") {
		t.Fatal(err)
	}
}
