package coordinator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datashift/datashift/coordinator/history"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// Config is what a node needs.
type Config struct {
	// Store is the node's session on the cluster's tree (ZooKeeper, or the
	// embedded store for a cluster of one). The node does not close it.
	Store store.Store
	// SessionTimeout is the store's session timeout: a node disconnected
	// that long stops leading and stops its partitions, since the cluster
	// may have given them to others by then. 0: never (the embedded
	// store does not disconnect).
	SessionTimeout time.Duration
	Addr           string // the node's API address, published for others
	Slots          int    // partitions it runs at once, unless the cluster's config says
	// LogLevel, if set, is the level of Log, which the cluster's config
	// may change.
	LogLevel *slog.LevelVar
	Log      *slog.Logger
	// ResourceEvery is how often the node republishes its resources
	// (default 3s); Tick how often the leader looks again without a watch
	// firing (default 2s).
	ResourceEvery time.Duration
	Tick          time.Duration
	// History, if set, also keeps finished runs (Redis in a cluster).
	History History
	// Progress, if set, hears the progress of every partition the node
	// executes (the progress bars of `datashift run`).
	Progress func(engine.Progress)
	// NoSchedule keeps the node from firing the jobs it owns by their
	// schedules: `datashift run` runs its job once.
	NoSchedule bool
	// HTTPClient posts callbacks; nil: a client with a 10s timeout.
	HTTPClient *http.Client
	// Metrics, if set, counts what the node does (rows committed, retries,
	// runs ended, fires taken) for Prometheus; nil: nothing is counted.
	Metrics *Metrics
	// Now and Sleep are the clock; nil: the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// History keeps finished runs outside the coordinator store (Redis, see
// package history): the leader puts each run as it ends, with a summary
// of its partitions, and every node's API reads them back.
type History interface {
	history.Writer
	history.Reader
}

// A Node is one member of a cluster: it registers itself, publishes its
// resources, runs the partitions assigned to it, and stands for leader.
// After its session is lost it stops everything it was doing and joins
// again as a new member (a new id) once the store has a new session.
type Node struct {
	cfg     Config
	log     *slog.Logger
	cluster *Cluster

	mu       sync.Mutex
	id       string // the current member id ("" between sessions)
	slots    int    // as configured now
	leading  bool
	draining bool
	running  map[PartitionKey]context.CancelFunc
	changed  chan struct{}   // resources to republish
	posting  map[string]bool // callback entries being posted

	session atomic.Int32 // the store session's state as last heard (store.SessionState)

	registered chan struct{} // closed once the first membership is up
	done       chan struct{}
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

// Start starts a node; it returns once the node is a member of the cluster.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Slots <= 0 {
		return nil, fmt.Errorf("node: slots must be at least 1 (got %d)", cfg.Slots)
	}
	if cfg.ResourceEvery <= 0 {
		cfg.ResourceEvery = 3 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 2 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: log, cluster: &Cluster{S: cfg.Store, Now: cfg.Now, History: cfg.History},
		running: map[PartitionKey]context.CancelFunc{}, posting: map[string]bool{}, changed: make(chan struct{}, 1), slots: cfg.Slots,
		registered: make(chan struct{}), done: make(chan struct{})}
	if err := n.cluster.ensureBase(ctx); err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	n.stop = stop
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(n.done)
		n.sessions(runCtx)
	}()
	select {
	case <-n.registered:
		return n, nil
	case <-n.done:
		return nil, errors.New("node: the store closed before the node could join")
	case <-ctx.Done():
		stop()
		n.wg.Wait()
		return nil, ctx.Err()
	}
}

// ID is the node's member id now ("" while it has no session).
func (n *Node) ID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// Leading reports whether the node leads the cluster now.
func (n *Node) Leading() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leading
}

// StoreConnected reports whether the node's store session is connected
// now, as its session events last said.
func (n *Node) StoreConnected() bool {
	return store.SessionState(n.session.Load()) == store.Connected
}

// Cluster is the node's view of the cluster's tree, for its API.
func (n *Node) Cluster() *Cluster { return n.cluster }

// Stop drains the node and leaves: it takes no new assignments, stops its
// partitions at their last checkpoint and gives them back at once (the
// leader places them elsewhere without waiting for a session timeout),
// and stops leading. The store's session stays the caller's to close.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	n.draining = true
	cancels := make([]context.CancelFunc, 0, len(n.running))
	for _, c := range n.running {
		cancels = append(cancels, c)
	}
	n.mu.Unlock()
	n.republish()
	for _, c := range cancels {
		c()
	}
	// The partitions give themselves back as they stop.
	for {
		n.mu.Lock()
		left := len(n.running)
		n.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			n.stop()
			n.wg.Wait()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	n.giveBackUnstarted(ctx)
	n.stop()
	n.wg.Wait()
	return nil
}

// giveBackUnstarted deletes the assignments a draining node never started
// (placed while the leader had not yet seen it drain), so that they too
// move on at once rather than when its session ends. The leader makes
// each one pending again, from its checkpoint.
func (n *Node) giveBackUnstarted(ctx context.Context) {
	id := n.ID()
	if id == "" {
		return
	}
	dir := store.Join(assignPath, id)
	kids, err := n.cfg.Store.Children(ctx, dir)
	if err != nil {
		return
	}
	for _, kid := range kids {
		if _, err := n.cfg.Store.Multi(ctx, store.DeleteOp(store.Join(dir, kid), store.AnyVersion)); err != nil && !errors.Is(err, store.ErrNoNode) {
			n.log.Warn("cannot give back an assignment", "assignment", kid, "err", err)
		}
	}
}

// Done is closed once the node has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// sessions runs a membership for each session of the store, and ends it
// when the session is lost: expired, or disconnected for the session
// timeout (store/doc.go §3).
func (n *Node) sessions(ctx context.Context) {
	var (
		current int64
		end     context.CancelFunc = func() {}
		ended   chan struct{}
		lost    <-chan time.Time
	)
	endMembership := func(why string) {
		if current == 0 {
			return
		}
		// A stop is asked for; a lost session is news.
		level := slog.LevelWarn
		if why == "stopped" {
			level = slog.LevelInfo
		}
		n.log.Log(context.Background(), level, "leaving the cluster", "node", n.ID(), "why", why)
		end()
		<-ended
		current, lost = 0, nil
	}
	defer func() { endMembership("stopped") }()
	events := n.cfg.Store.SessionEvents(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
			endMembership(fmt.Sprintf("disconnected for the session timeout (%s)", n.cfg.SessionTimeout))
		case ev, ok := <-events:
			if !ok {
				return
			}
			n.session.Store(int32(ev.State))
			switch ev.State {
			case store.Connected:
				lost = nil
				if ev.SessionID == current {
					continue
				}
				endMembership("new session")
				mctx, cancel := context.WithCancel(ctx)
				current, end, ended = ev.SessionID, cancel, make(chan struct{})
				go func(done chan struct{}) {
					defer close(done)
					n.member(mctx)
				}(ended)
			case store.Disconnected:
				if n.cfg.SessionTimeout > 0 && lost == nil {
					lost = time.After(n.cfg.SessionTimeout)
				}
			case store.Expired:
				endMembership("session expired")
			case store.Closed:
				endMembership("store closed")
				return
			}
		}
	}
}

// member is one membership: registration, resources, the worker and the
// candidacy, until ctx ends.
func (n *Node) member(ctx context.Context) {
	s := n.cfg.Store
	info, _ := json.Marshal(NodeInfo{Addr: n.cfg.Addr, Host: hostname(), PID: os.Getpid(), Slots: n.cfg.Slots, Started: n.cluster.now()})
	made, err := createSequential(ctx, s, nodesPath, "node-", info, n.sleep)
	if err != nil {
		n.log.Error("cannot register", "err", err)
		return
	}
	id := store.Base(made)
	n.mu.Lock()
	n.id = id
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.id, n.leading = "", false
		n.mu.Unlock()
	}()
	if _, err := store.CreateAll(ctx, s, store.Join(assignPath, id), nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		n.log.Error("cannot make the assignment folder", "node", id, "err", err)
		return
	}
	n.log.Info("joined the cluster", "node", id, "slots", n.cfg.Slots, "addr", n.cfg.Addr)
	select {
	case <-n.registered:
	default:
		close(n.registered)
	}
	var wg sync.WaitGroup
	wg.Add(4)
	if !n.cfg.NoSchedule {
		wg.Add(1)
		go func() { defer wg.Done(); n.schedule(ctx, id) }()
	}
	go func() { defer wg.Done(); n.watchConfig(ctx) }()
	go func() { defer wg.Done(); n.publish(ctx, id) }()
	go func() { defer wg.Done(); n.work(ctx, id) }()
	go func() { defer wg.Done(); n.stand(ctx, id) }()
	wg.Wait()
}

// publish keeps /resources/ID up to date while the membership lasts.
func (n *Node) publish(ctx context.Context, id string) {
	path := store.Join(resourcesPath, id)
	tick := time.NewTicker(n.cfg.ResourceEvery)
	defer tick.Stop()
	for {
		data, _ := json.Marshal(n.resources())
		_, err := n.cfg.Store.Set(ctx, path, data, store.AnyVersion)
		if errors.Is(err, store.ErrNoNode) {
			_, err = n.cfg.Store.Create(ctx, path, data, store.Ephemeral)
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("cannot publish resources", "node", id, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.changed:
		}
	}
}

func (n *Node) republish() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

func (n *Node) resources() Resources {
	n.mu.Lock()
	r := Resources{Slots: n.slots, Draining: n.draining, Updated: n.cluster.now()}
	for k := range n.running {
		r.Running = append(r.Running, k.String())
	}
	n.mu.Unlock()
	sort.Strings(r.Running)
	r.Free = max(0, r.Slots-len(r.Running))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.Heap = int64(ms.HeapAlloc)
	r.MemAvailable = memAvailable()
	r.Load = loadPerCore()
	return r
}

// memAvailable reads MemAvailable from /proc/meminfo (0 where there is none).
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// loadPerCore is the 1-minute load average over the cores (0 where
// /proc/loadavg is missing).
func loadPerCore() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	l, _ := strconv.ParseFloat(f[0], 64)
	return l / float64(runtime.NumCPU())
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// stand is the node's candidacy: the ZooKeeper election recipe. The node
// creates an ephemeral sequential znode; the lowest leads, each other
// watches the one just below its own, so a leader's death wakes one node,
// not all. Leading lasts as long as the membership or until a fenced write
// finds the election znode gone.
func (n *Node) stand(ctx context.Context, id string) {
	s := n.cfg.Store
	mine, err := createSequential(ctx, s, electionPath, "n-", []byte(id), n.sleep)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Error("cannot stand for leader", "node", id, "err", err)
		}
		return
	}
	name := store.Base(mine)
	for ctx.Err() == nil {
		kids, err := s.Children(ctx, electionPath)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("election: list candidates", "err", err)
				_ = n.sleep(ctx, time.Second)
			}
			continue
		}
		sortBySequence(kids)
		pos := -1
		for i, k := range kids {
			if k == name {
				pos = i
			}
		}
		switch {
		case pos < 0:
			return // our candidacy is gone with the session
		case pos == 0:
			epoch, _ := store.Sequence(name)
			n.lead(ctx, id, mine, epoch)
			return
		}
		ok, _, ch, err := s.ExistsW(ctx, store.Join(electionPath, kids[pos-1]))
		if err != nil || !ok {
			continue
		}
		select {
		case <-ctx.Done():
		case <-ch:
		}
	}
}

func (n *Node) sleep(ctx context.Context, d time.Duration) error {
	if n.cfg.Sleep != nil {
		return n.cfg.Sleep(ctx, d)
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// createSequential creates an ephemeral sequential node parent/prefixN
// holding data, which must be this call's alone. A create lost with the
// connection may have been applied: before making it again it looks for
// the node it may have made, so that a node never stands twice.
func createSequential(ctx context.Context, s store.Store, parent, prefix string, data []byte, sleep func(context.Context, time.Duration) error) (string, error) {
	for {
		made, err := s.Create(ctx, store.Join(parent, prefix), data, store.Ephemeral|store.Sequential)
		if err == nil || !errors.Is(err, store.ErrConnectionLoss) {
			return made, err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return "", err
		}
		kids, lerr := s.Children(ctx, parent)
		if lerr != nil {
			continue
		}
		for _, k := range kids {
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			got, _, gerr := s.Get(ctx, store.Join(parent, k))
			if gerr == nil && string(got) == string(data) {
				return store.Join(parent, k), nil
			}
		}
	}
}
