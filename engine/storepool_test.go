package engine

import (
	"testing"

	"github.com/datashift/datashift/connectors"
)

// fakeStore is a source and sink that only counts its Close.
type fakeStore struct {
	connectors.Source
	connectors.Sink
	closed int
}

func (f *fakeStore) Close() error { f.closed++; return nil }

// The pool gives stores back only to a partition of the same source and
// sink configuration: a run whose snapshot changed (its leader's went with
// it) or whose window moved opens new ones, and the stale ones are closed.
func TestStorePoolTakesOnlyStoresOfTheSameConfiguration(t *testing.T) {
	cfg := connectors.SourceConfig{DSN: "memory:a", Table: "t", Key: []string{"id"}, Snapshot: "s1"}
	sinkCfg := connectors.SinkConfig{DSN: "memory:b", Table: "t", Mode: connectors.Append}
	moved := cfg
	moved.Snapshot = "s2"
	for _, tc := range []struct {
		name      string
		take      connectors.SourceConfig
		reused    bool
		closedOld int
	}{
		{"same configuration", cfg, true, 0},
		{"another snapshot", moved, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, sink := &fakeStore{}, &fakeStore{}
			p := &storePool{}
			p.put(&stores{srcCfg: cfg, sinkCfg: sinkCfg, src: src, sink: sink})
			got := p.take(tc.take, sinkCfg)
			if (got != nil) != tc.reused {
				t.Fatalf("take gave %v, want reused %v", got, tc.reused)
			}
			if src.closed != tc.closedOld || sink.closed != tc.closedOld {
				t.Fatalf("the pooled source and sink were closed %d and %d times, want %d", src.closed, sink.closed, tc.closedOld)
			}
			if again := p.take(cfg, sinkCfg); again != nil {
				t.Fatal("stores were taken twice")
			}
			p.close()
			if got != nil {
				p.put(got) // a partition that ends after the pool closed
			}
			if src.closed != 1 || sink.closed != 1 {
				t.Fatalf("after the pool closed, the source and sink were closed %d and %d times, want once", src.closed, sink.closed)
			}
		})
	}
}
