package engine

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/datashift/datashift/connectors"
)

// A partition's source and sink are opened for it, and after it ends well
// they serve the run's next partition on the same executor: opening a
// PostgreSQL source costs a new server backend and a look at the
// catalog, about 13 ms of the 25 ms a partition took to send its first
// row, and a run of 64 partitions paid it 64 times per store. An executor
// holds at most one pair per partition at once, each used by one
// partition at a time, so a connector needs only be usable for one
// partition after another, never by two at once.

// stores is an open source and sink, and the configurations they were
// opened with.
type stores struct {
	srcCfg  connectors.SourceConfig
	sinkCfg connectors.SinkConfig
	src     connectors.Source
	sink    connectors.Sink
}

func (s *stores) close() {
	s.src.Close()
	s.sink.Close()
}

// storePool keeps the stores of partitions that ended well until the next
// partition takes them, or the pool closes.
type storePool struct {
	mu     sync.Mutex
	idle   []*stores
	closed bool
}

// take returns idle stores opened with exactly these configurations (a
// run's snapshot or incremental window may change between partitions),
// or nil. It closes idle ones that no longer fit.
func (p *storePool) take(srcCfg connectors.SourceConfig, sinkCfg connectors.SinkConfig) *stores {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	var found *stores
	var stale []*stores
	keep := p.idle[:0]
	for _, s := range p.idle {
		switch {
		case !reflect.DeepEqual(s.srcCfg, srcCfg) || !reflect.DeepEqual(s.sinkCfg, sinkCfg):
			stale = append(stale, s)
		case found == nil:
			found = s
		default:
			keep = append(keep, s)
		}
	}
	p.idle = keep
	p.mu.Unlock()
	for _, s := range stale {
		s.close()
	}
	return found
}

// put gives back stores whose partition ended well. A pool that is closed
// (or absent) closes them instead.
func (p *storePool) put(s *stores) {
	if p == nil {
		s.close()
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		s.close()
		return
	}
	p.idle = append(p.idle, s)
	p.mu.Unlock()
}

// close closes the idle stores; stores given back later are closed then.
func (p *storePool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, s := range idle {
		s.close()
	}
}

// openStores returns the stores for t: idle ones from an earlier
// partition of the run when they fit, otherwise newly opened ones.
func (e *Executor) openStores(ctx context.Context, t Task) (*stores, error) {
	srcCfg, sinkCfg := sourceConfig(t.Job, t.Run), sinkConfig(t.Job)
	if s := e.stores.take(srcCfg, sinkCfg); s != nil {
		return s, nil
	}
	src, err := connectors.OpenSource(ctx, t.Job.Source.Type, srcCfg)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	sink, err := connectors.OpenSink(ctx, t.Job.Sink.Type, sinkCfg)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("open sink: %w", err)
	}
	return &stores{srcCfg: srcCfg, sinkCfg: sinkCfg, src: src, sink: sink}, nil
}
