package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/history"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/coordinator/store/zkstore"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/web"
)

func nodeCmd() *cobra.Command {
	var (
		zk, root, listen, stateDir, token, logLevel, redisURL, redisPrefix string
		slots                                                              int
		sessionTimeout, drainTimeout                                       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Join a cluster (ZooKeeper with --zk, or a cluster of one) and serve its API",
		Long: `Starts a cluster node: it registers itself, runs the partitions the leader
gives it, stands for leader, and serves the JSON API (jobs, runs, nodes) on
--listen. With --zk the cluster's state lives in ZooKeeper (an ensemble
host:port,host:port; --root lets several clusters share one); without it, in an
embedded store file in the state folder: a cluster of one.

SIGTERM or Ctrl-C drains the node: it takes no new partitions, stops its running
ones at their last checkpoint, hands them back so that other nodes continue them
at once, and leaves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Secrets come from the environment here, not as flag
			// defaults, which --help would print.
			redisURL, token = orEnv(redisURL, "DATASHIFT_REDIS"), orEnv(token, "DATASHIFT_TOKEN")
			if slots < 1 {
				return fmt.Errorf("--slots must be at least 1 (got %d)", slots)
			}
			setMemoryLimit(nodeMemoryLimitBase, slots)
			level := new(slog.LevelVar)
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx := cmd.Context()

			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			defer ln.Close()

			s, closeStore, timeout, err := openClusterStore(ctx, zk, root, stateDir, sessionTimeout, log)
			if err != nil {
				return err
			}
			defer closeStore()
			metrics, err := newNodeMetrics()
			if err != nil {
				return err
			}
			cfg := coordinator.Config{Store: s, SessionTimeout: timeout, Addr: ln.Addr().String(), Slots: slots, Log: log, LogLevel: level, Metrics: metrics.counts}
			if redisURL != "" {
				h, err := history.OpenRedis(ctx, redisURL, redisPrefix, 0)
				if err != nil {
					return fmt.Errorf("--redis: %w", err)
				}
				defer h.Close()
				cfg.History = h
			}
			startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			node, err := coordinator.Start(startCtx, cfg)
			cancel()
			if err != nil {
				return err
			}
			scrape, err := metrics.serve(node, log)
			if err != nil {
				return err
			}
			srv := &http.Server{
				Handler:           (&api{node: node, token: token, check: engine.Check, metrics: scrape, ui: web.Handler()}).routes(),
				ReadHeaderTimeout: 10 * time.Second,
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			fmt.Fprintf(cmd.OutOrStdout(), "datashift node %s: API and UI on http://%s/, %d slots, store %s\n", node.ID(), ln.Addr(), slots, storeName(zk, root, stateDir))

			select {
			case <-ctx.Done():
			case err := <-served:
				return fmt.Errorf("API server: %w", err)
			case <-node.Done():
				return errors.New("the node stopped: its store closed")
			}
			log.Info("draining", "node", node.ID())
			drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			if err := node.Stop(drainCtx); err != nil {
				log.Warn("drain did not finish", "err", err)
			}
			_ = srv.Shutdown(drainCtx)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&zk, "zk", os.Getenv("DATASHIFT_ZK"), "ZooKeeper ensemble host:port[,host:port…]; empty: an embedded store (a cluster of one)")
	f.StringVar(&root, "root", store.DefaultRoot, "the cluster's root in ZooKeeper")
	f.StringVar(&listen, "listen", "127.0.0.1:8700", "address of the API")
	f.IntVar(&slots, "slots", runtime.NumCPU(), "partitions this node runs at once")
	f.StringVar(&stateDir, "state", envOr("DATASHIFT_STATE", defaultStateDir()), "folder of the embedded store (without --zk)")
	f.DurationVar(&sessionTimeout, "session-timeout", 10*time.Second, "ZooKeeper session timeout: a node silent this long is taken for dead")
	f.DurationVar(&drainTimeout, "drain-timeout", 30*time.Second, "how long a drain may take on SIGTERM")
	f.StringVar(&redisURL, "redis", "", "Redis URL (redis://host:port/db) that keeps finished runs (default $DATASHIFT_REDIS); empty: the store keeps the last few")
	f.StringVar(&redisPrefix, "redis-prefix", history.DefaultPrefix, "put before every key in Redis, so that several clusters can share one")
	f.StringVar(&token, "token", "", "bearer token the API requires for changes (default $DATASHIFT_TOKEN; empty: none)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// openClusterStore opens the node's session: ZooKeeper when servers are
// given, else the embedded store file in stateDir.
func openClusterStore(ctx context.Context, servers, root, stateDir string, timeout time.Duration, log *slog.Logger) (store.Store, func(), time.Duration, error) {
	if servers == "" {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, nil, 0, fmt.Errorf("state folder: %w", err)
		}
		path := filepath.Join(stateDir, "node.db")
		db, err := embedded.Open(path)
		if errors.Is(err, embedded.ErrInUse) {
			return nil, nil, 0, fmt.Errorf("another node runs on %s (without --zk a node is a cluster of one)", path)
		}
		if err != nil {
			return nil, nil, 0, err
		}
		s, err := db.Session()
		if err != nil {
			db.Close()
			return nil, nil, 0, err
		}
		return s, func() { s.Close(); db.Close() }, 0, nil
	}
	s, err := zkstore.Open(ctx, zkstore.Config{Servers: strings.Split(servers, ","), Root: root, SessionTimeout: timeout, Logger: log})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("--zk %s: %w", servers, err)
	}
	return s, func() { s.Close() }, timeout, nil
}

func storeName(zk, root, stateDir string) string {
	if zk == "" {
		return "embedded " + filepath.Join(stateDir, "node.db")
	}
	return "zookeeper " + zk + root
}
