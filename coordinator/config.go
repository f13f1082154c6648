package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// configsPath holds the cluster-wide settings every node watches and
// applies without a restart.
const configsPath = "/configs"

// ClusterConfig is the cluster's settings. A zero field means "not set":
// each node's own flag, or the engine's default, applies.
type ClusterConfig struct {
	// Slots, when set, is every node's number of slots, in place of its
	// --slots.
	Slots int `json:"slots,omitempty"`
	// BatchRows and CommitRows are the defaults given to jobs submitted
	// without batch_rows or commit_rows.
	BatchRows  int   `json:"batch_rows,omitempty"`
	CommitRows int64 `json:"commit_rows,omitempty"`
	// LogLevel is every node's log level: debug, info, warn or error.
	LogLevel string `json:"log_level,omitempty"`
}

// Validate refuses what no node could apply, naming the field.
func (c ClusterConfig) Validate() error {
	var errs engine.SpecErrors
	bad := func(field, format string, args ...any) {
		errs = append(errs, &engine.SpecError{Of: "cluster config", Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if c.Slots < 0 || c.Slots > 1024 {
		bad("slots", "must be between 1 and 1024, or 0 for each node's own (got %d)", c.Slots)
	}
	if c.BatchRows < 0 {
		bad("batch_rows", "must not be negative")
	}
	if c.CommitRows < 0 {
		bad("commit_rows", "must not be negative")
	}
	if c.LogLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
			bad("log_level", "must be debug, info, warn or error (got %q)", c.LogLevel)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// JobDefaults are the defaults the config gives submitted jobs.
func (c ClusterConfig) JobDefaults() engine.JobDefaults {
	return engine.JobDefaults{BatchRows: c.BatchRows, CommitRows: c.CommitRows}
}

// ErrConfigChanged refuses a config change made against a revision that
// is no longer the newest: someone else changed it since it was read.
var ErrConfigChanged = errors.New("the cluster config changed since it was read")

// AnyRevision makes SetConfig replace whatever config is there.
const AnyRevision int64 = -1

// Config reads the cluster's settings (zero when none were ever set) and
// their revision: 0 before the first change, then one more per change.
func (c *Cluster) Config(ctx context.Context) (ClusterConfig, int64, error) {
	var cfg ClusterConfig
	data, stat, err := c.S.Get(ctx, configsPath)
	if errors.Is(err, store.ErrNoNode) {
		return ClusterConfig{}, 0, nil
	}
	if err != nil {
		return cfg, 0, err
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, 0, fmt.Errorf("decode %s: %w", configsPath, err)
	}
	return cfg, int64(stat.Version) + 1, nil
}

// SetConfig replaces the cluster's settings, if their revision is still
// ifRevision (AnyRevision: whatever it is), and returns the new revision;
// every node applies them as its watch fires.
func (c *Cluster) SetConfig(ctx context.Context, cfg ClusterConfig, ifRevision int64) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return 0, err
	}
	version := store.AnyVersion
	if ifRevision > 0 {
		version = int32(ifRevision - 1)
	}
	if ifRevision != 0 {
		stat, err := c.S.Set(ctx, configsPath, data, version)
		switch {
		case err == nil:
			return int64(stat.Version) + 1, nil
		case errors.Is(err, store.ErrBadVersion), ifRevision > 0 && errors.Is(err, store.ErrNoNode):
			return 0, changedSince(ctx, c, ifRevision)
		case !errors.Is(err, store.ErrNoNode):
			return 0, err
		}
	}
	// Never set: the first change makes the node.
	if _, err := c.S.Create(ctx, configsPath, data, 0); err != nil {
		if errors.Is(err, store.ErrNodeExists) {
			if ifRevision == AnyRevision {
				return c.SetConfig(ctx, cfg, ifRevision)
			}
			return 0, changedSince(ctx, c, ifRevision)
		}
		return 0, err
	}
	return 1, nil
}

// changedSince is ErrConfigChanged with the revisions, for the one who
// must read the config again.
func changedSince(ctx context.Context, c *Cluster, was int64) error {
	_, now, err := c.Config(ctx)
	if err != nil {
		return fmt.Errorf("%w (revision %d)", ErrConfigChanged, was)
	}
	return fmt.Errorf("%w: revision %d, now %d; read it again", ErrConfigChanged, was, now)
}

// watchConfig applies the cluster's settings as they change, for the
// membership's life.
func (n *Node) watchConfig(ctx context.Context) {
	s := n.cfg.Store
	for ctx.Err() == nil {
		ok, _, changed, err := s.ExistsW(ctx, configsPath)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("watch the cluster's config", "err", err)
				_ = n.sleep(ctx, n.cfg.Tick)
			}
			continue
		}
		var cfg ClusterConfig
		if ok {
			if err := getJSON(ctx, s, configsPath, &cfg); err != nil && !errors.Is(err, store.ErrNoNode) {
				n.log.Warn("read the cluster's config", "err", err)
			}
		}
		n.apply(cfg)
		select {
		case <-ctx.Done():
		case <-changed:
		}
	}
}

// apply makes the node follow cfg.
func (n *Node) apply(cfg ClusterConfig) {
	slots := n.cfg.Slots
	if cfg.Slots > 0 {
		slots = cfg.Slots
	}
	n.mu.Lock()
	changed := n.slots != slots
	n.slots = slots
	n.mu.Unlock()
	if changed {
		n.log.Info("slots now", "node", n.ID(), "slots", slots)
		n.republish()
	}
	if n.cfg.LogLevel != nil && cfg.LogLevel != "" {
		var l slog.Level
		if l.UnmarshalText([]byte(cfg.LogLevel)) == nil && n.cfg.LogLevel.Level() != l {
			n.cfg.LogLevel.Set(l)
			n.log.Info("log level now", "node", n.ID(), "level", l)
		}
	}
}
