package fanout

import (
	"context"
	"testing"
	"time"
)

func collect(t *testing.T, c <-chan int) []int {
	t.Helper()
	var got []int
	timeout := time.After(5 * time.Second)
	for {
		select {
		case v, ok := <-c:
			if !ok {
				return got
			}
			got = append(got, v)
		case <-timeout:
			t.Fatalf("channel not closed; got %v so far", got)
		}
	}
}

func TestSlowReaderGetsEverythingInOrder(t *testing.T) {
	f := New[int]()
	c := f.Subscribe(context.Background(), 0)
	// Far more than any channel buffer: the publisher must not block while
	// nobody reads, and nothing may be dropped.
	for i := 1; i <= 1000; i++ {
		f.Publish(i)
	}
	f.Close()
	got := collect(t, c)
	if len(got) != 1001 {
		t.Fatalf("got %d values, want 1001", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("value %d is %d: out of order", i, v)
		}
	}
}

func TestSubscribersAreIndependent(t *testing.T) {
	f := New[int]()
	a := f.Subscribe(context.Background(), 10)
	f.Publish(1)
	b := f.Subscribe(context.Background(), 20)
	f.Publish(2)
	f.Close()
	if got := collect(t, a); len(got) != 3 || got[0] != 10 || got[1] != 1 || got[2] != 2 {
		t.Errorf("a got %v, want [10 1 2]", got)
	}
	if got := collect(t, b); len(got) != 2 || got[0] != 20 || got[1] != 2 {
		t.Errorf("b got %v, want [20 2]", got)
	}
	if got := collect(t, f.Subscribe(context.Background(), 30)); len(got) != 1 || got[0] != 30 {
		t.Errorf("subscriber after Close got %v, want [30]", got)
	}
}

func TestCancelEndsSubscription(t *testing.T) {
	f := New[int]()
	ctx, cancel := context.WithCancel(context.Background())
	c := f.Subscribe(ctx, 0)
	f.Publish(1)
	cancel()
	collect(t, c) // must close although values are pending
	f.mu.Lock()
	n := len(f.subs)
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("%d subscribers left after cancel, want 0", n)
	}
}
