package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/datashift/datashift/coordinator/store"
)

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
