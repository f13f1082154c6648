package connectors

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// OpenSourceFunc opens a source; it checks cfg and fails with an error naming
// the bad field before touching the store where it can.
type OpenSourceFunc func(ctx context.Context, cfg SourceConfig) (Source, error)

// OpenSinkFunc opens a sink.
type OpenSinkFunc func(ctx context.Context, cfg SinkConfig) (Sink, error)

var (
	registryMu sync.RWMutex
	sources    = map[string]OpenSourceFunc{}
	sinks      = map[string]OpenSinkFunc{}
)

// RegisterSource makes a source type available by name. It panics on an empty
// name, a nil function or a name registered twice, like sql.Register.
func RegisterSource(name string, open OpenSourceFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || open == nil {
		panic("connectors: RegisterSource with empty name or nil function")
	}
	if _, dup := sources[name]; dup {
		panic("connectors: RegisterSource called twice for " + name)
	}
	sources[name] = open
}

// RegisterSink makes a sink type available by name; see RegisterSource.
func RegisterSink(name string, open OpenSinkFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || open == nil {
		panic("connectors: RegisterSink with empty name or nil function")
	}
	if _, dup := sinks[name]; dup {
		panic("connectors: RegisterSink called twice for " + name)
	}
	sinks[name] = open
}

// OpenSource opens a source of the named type.
func OpenSource(ctx context.Context, typ string, cfg SourceConfig) (Source, error) {
	registryMu.RLock()
	open, ok := sources[typ]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown source type %q (known: %v)", typ, SourceTypes())
	}
	return open(ctx, cfg)
}

// OpenSink opens a sink of the named type.
func OpenSink(ctx context.Context, typ string, cfg SinkConfig) (Sink, error) {
	registryMu.RLock()
	open, ok := sinks[typ]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown sink type %q (known: %v)", typ, SinkTypes())
	}
	return open(ctx, cfg)
}

// SourceTypes lists the registered source types, sorted.
func SourceTypes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return sortedKeys(sources)
}

// SinkTypes lists the registered sink types, sorted.
func SinkTypes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return sortedKeys(sinks)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
