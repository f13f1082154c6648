package connectors

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// OpenSourceFunc opens a source; it checks cfg and fails with an error naming
// the bad field before touching the store where it can.
type OpenSourceFunc func(ctx context.Context, cfg SourceConfig) (Source, error)

// OpenSinkFunc opens a sink.
type OpenSinkFunc func(ctx context.Context, cfg SinkConfig) (Sink, error)

var (
	registryMu    sync.RWMutex
	sources       = map[string]OpenSourceFunc{}
	sinks         = map[string]OpenSinkFunc{}
	sourceOptions = map[string]Options{}
	sinkOptions   = map[string]Options{}
)

// RegisterSource makes a source type available by name, with the options it
// takes. It panics on an empty name, a nil function, a name registered twice,
// or an option without a name or a Doc or declared twice, like sql.Register.
func RegisterSource(name string, open OpenSourceFunc, opts ...Option) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || open == nil {
		panic("connectors: RegisterSource with empty name or nil function")
	}
	if _, dup := sources[name]; dup {
		panic("connectors: RegisterSource called twice for " + name)
	}
	checkDeclared("RegisterSource", name, opts)
	sources[name] = open
	sourceOptions[name] = slices.Clone(Options(opts))
}

// RegisterSink makes a sink type available by name; see RegisterSource.
func RegisterSink(name string, open OpenSinkFunc, opts ...Option) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || open == nil {
		panic("connectors: RegisterSink with empty name or nil function")
	}
	if _, dup := sinks[name]; dup {
		panic("connectors: RegisterSink called twice for " + name)
	}
	checkDeclared("RegisterSink", name, opts)
	sinks[name] = open
	sinkOptions[name] = slices.Clone(Options(opts))
}

func checkDeclared(fn, name string, opts []Option) {
	seen := map[string]bool{}
	for _, o := range opts {
		if o.Name == "" || o.Doc == "" {
			panic(fmt.Sprintf("connectors: %s(%q): option %q without a name or a Doc", fn, name, o.Name))
		}
		if seen[o.Name] {
			panic(fmt.Sprintf("connectors: %s(%q): option %q declared twice", fn, name, o.Name))
		}
		seen[o.Name] = true
	}
}

// SourceOptions returns the options a source type declared; ok is false
// when no source of that type is registered.
func SourceOptions(typ string) (opts Options, ok bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	opts, ok = sourceOptions[typ]
	return slices.Clone(opts), ok
}

// SinkOptions returns the options a sink type declared; see SourceOptions.
func SinkOptions(typ string) (opts Options, ok bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	opts, ok = sinkOptions[typ]
	return slices.Clone(opts), ok
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
