// Package fanout delivers a stream of values to any number of subscribers,
// each at its own pace, without ever blocking the publisher or dropping a
// value. It carries session events, which are rare and must not be lost: a
// missed "expired" would leave a node believing its ephemeral nodes exist.
package fanout

import (
	"context"
	"sync"
)

// Fanout is safe for concurrent use. The zero value is not usable; use New.
type Fanout[T any] struct {
	mu     sync.Mutex
	subs   map[*sub[T]]struct{}
	closed bool
}

func New[T any]() *Fanout[T] {
	return &Fanout[T]{subs: make(map[*sub[T]]struct{})}
}

type sub[T any] struct {
	mu    sync.Mutex
	queue []T
	done  bool          // nothing more will be queued
	wake  chan struct{} // capacity 1: "the queue changed"
}

// Subscribe returns a channel that delivers first, then every value
// published after this call, in order. It is closed after Close once the
// queued values are read, or as soon as ctx ends. The caller makes first and
// the registration atomic with respect to Publish (by holding the lock it
// publishes under), so a subscriber sees a state and then every change to it.
func (f *Fanout[T]) Subscribe(ctx context.Context, first T) <-chan T {
	s := &sub[T]{queue: []T{first}, wake: make(chan struct{}, 1)}
	f.mu.Lock()
	if f.closed {
		s.done = true
	} else {
		f.subs[s] = struct{}{}
	}
	f.mu.Unlock()
	out := make(chan T)
	go f.pump(ctx, s, out)
	return out
}

func (f *Fanout[T]) pump(ctx context.Context, s *sub[T], out chan<- T) {
	defer close(out)
	defer func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			done := s.done
			s.mu.Unlock()
			if done {
				return
			}
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		v := s.queue[0]
		var zero T
		s.queue[0] = zero
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case out <- v:
		case <-ctx.Done():
			return
		}
	}
}

// Publish queues v for every subscriber. It never blocks on a reader.
func (f *Fanout[T]) Publish(v T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	for s := range f.subs {
		s.mu.Lock()
		s.queue = append(s.queue, v)
		s.mu.Unlock()
		poke(s.wake)
	}
}

// Close publishes nothing more: subscribers get what is queued, then their
// channels close. Later subscribers get only their first value.
func (f *Fanout[T]) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	for s := range f.subs {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
		poke(s.wake)
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
