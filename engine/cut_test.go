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
