package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
)

// sameKey decides where a partition may commit: it must call keys equal
// whenever a store's collation might (case, accents, trailing spaces), and
// may err only that way.
func TestSameKeyErrsTowardsEqual(t *testing.T) {
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		a, b connectors.Key
		want bool
	}{
		{connectors.Key{int64(1)}, connectors.Key{int64(1)}, true},
		{connectors.Key{int64(1)}, connectors.Key{int64(2)}, false},
		{connectors.Key{"abc"}, connectors.Key{"ABC"}, true},       // utf8mb4_general_ci
		{connectors.Key{"resume"}, connectors.Key{"résumé"}, true}, // accent-insensitive collations
		{connectors.Key{"a"}, connectors.Key{"a  "}, true},         // PAD SPACE
		{connectors.Key{"a"}, connectors.Key{"b"}, false},
		{connectors.Key{int64(7), "X"}, connectors.Key{int64(7), "x"}, true},
		{connectors.Key{int64(7), "x"}, connectors.Key{int64(8), "x"}, false},
		{connectors.Key{ts}, connectors.Key{ts.Add(time.Microsecond)}, false},
		{nil, connectors.Key{int64(1)}, false}, // nothing written yet: nothing to split
	}
	for _, tt := range tests {
		if got := sameKey(tt.a, tt.b); got != tt.want {
			t.Errorf("sameKey(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestRetryStopsOnPermanentErrorsAndCountsAttempts(t *testing.T) {
	spec := RetrySpec{Max: 3, Backoff: Duration(time.Millisecond), MaxBackoff: Duration(4 * time.Millisecond)}
	var slept []time.Duration
	sleep := func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }

	calls := 0
	err := retry(context.Background(), spec, sleep, nil, func() error { calls++; return connectors.Transient(errors.New("reset")) })
	if err == nil || calls != 4 || fmt.Sprint(slept) != "[1ms 2ms 4ms]" {
		t.Fatalf("transient: err %v after %d calls, slept %v; want 4 calls and backoff 1ms 2ms 4ms", err, calls, slept)
	}
	calls, slept = 0, nil
	err = retry(context.Background(), spec, sleep, nil, func() error { calls++; return &connectors.ValueError{Column: "c", Reason: "too long"} })
	if err == nil || calls != 1 || len(slept) != 0 {
		t.Fatalf("permanent: err %v after %d calls; want 1 call, no sleep", err, calls)
	}
	calls = 0
	err = retry(context.Background(), spec, sleep, nil, func() error {
		calls++
		if calls < 3 {
			return connectors.Transient(errors.New("reset"))
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("recovering: err %v after %d calls", err, calls)
	}
}

// A store out of connections is waited for without using up the
// partition's tries, for up to busyWaitLimit in all; then its refusals
// count as any other.
func TestRetryWaitsForABusyStoreWithoutUsingUpTries(t *testing.T) {
	spec := RetrySpec{Max: 2, Backoff: Duration(time.Second), MaxBackoff: Duration(30 * time.Second)}
	busy := connectors.Busy(errors.New("sorry, too many clients already"))
	reset := connectors.Transient(errors.New("connection reset"))
	tests := []struct {
		name      string
		errs      []error // what the tries return, in order; nil after the last
		wantCalls int
		wantErr   error
	}{
		{"busy twenty times, then room", repeatErr(busy, 20), 21, nil},
		{"busy between resets", []error{reset, busy, busy, reset, busy}, 6, nil},
		{"resets past the tries", []error{reset, busy, reset, reset}, 4, reset},
		// 1 s, then 2 s each: 10 minutes are up after the 301st wait.
		{"busy for good", repeatErr(busy, 1000), 304, busy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var slept time.Duration
			sleep := func(_ context.Context, d time.Duration) error { slept += d; return nil }
			calls := 0
			err := retry(context.Background(), spec, sleep, nil, func() error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if err != tt.wantErr || calls != tt.wantCalls {
				t.Fatalf("err %v after %d calls (slept %s); want %v after %d", err, calls, slept, tt.wantErr, tt.wantCalls)
			}
		})
	}
}

func repeatErr(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
