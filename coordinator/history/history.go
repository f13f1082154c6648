// Package history keeps finished runs outside the coordinator store: in a
// cluster the leader puts every run that ends into Redis, and the API and
// UI read them back from there, while ZooKeeper only holds the runs that
// are going (or failed, to be continued).
//
// Layout, under a prefix ("datashift:" by default):
//
//	<prefix>run:<job>:<run>   hash: "run" the run record (engine.RunRecord as
//	                          JSON), "partitions" its partitions' summaries
//	                          (a JSON array of Partition)
//	<prefix>runs:<job>        sorted set of the job's kept run ids, scored by
//	                          the run's start time (Unix microseconds)
//
// A put writes both keys, and trims the job to its newest keep runs, in one
// MULTI/EXEC: a run is listed exactly when its record is there. Runs put
// again under the same id (a failed run continued and finished later)
// replace their entry.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
)

// Defaults of OpenRedis.
const (
	DefaultPrefix = "datashift:"
	DefaultKeep   = 1000
)

// Hash fields of a run's key.
const (
	fieldRun        = "run"
	fieldPartitions = "partitions"
)

// putAttempts bounds the optimistic retries of a put that raced another
// write of the same job's history.
const putAttempts = 16

// Reader is what the coordinator (its API and UI) reads the history
// through. *Redis implements it.
type Reader interface {
	// List returns up to limit of the job's finished runs, newest first
	// (limit <= 0: all that are kept).
	List(ctx context.Context, job string, limit int) ([]engine.RunRecord, error)
	// Get returns one finished run with its partitions' summaries, or an
	// error wrapping engine.ErrNotFound.
	Get(ctx context.Context, job, run string) (*Entry, error)
}

// Writer is what the leader puts finished runs through; it is the
// coordinator's History interface.
type Writer interface {
	Put(ctx context.Context, run *engine.RunRecord, parts []engine.PartitionRecord) error
}

// Entry is a finished run as the history keeps it.
type Entry struct {
	Run        engine.RunRecord `json:"run"`
	Partitions []Partition      `json:"partitions"`
}

// Partition is the summary of one partition of a finished run: what it
// covered, what became of it, and what it copied.
type Partition struct {
	ID       string `json:"id"`
	Range    string `json:"range"`
	State    string `json:"state"`
	Owner    string `json:"owner,omitempty"`
	Attempts int    `json:"attempts"`
	Lease    int64  `json:"lease"`
	Rows     int64  `json:"rows"`
	Bytes    int64  `json:"bytes"`
	BadRows  int64  `json:"bad_rows,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Summarize returns the summary of a partition record, its worker's last
// checkpoint included.
func Summarize(p engine.PartitionRecord) Partition {
	msg := p.Error
	if msg == "" {
		msg = p.Checkpoint.Error
	}
	return Partition{
		ID: p.ID, Range: p.Range.String(), State: p.State, Owner: p.Owner, Attempts: p.Attempts, Lease: p.Lease,
		Rows: p.Checkpoint.Rows, Bytes: p.Checkpoint.Bytes, BadRows: p.Checkpoint.BadRows, Error: msg,
	}
}

// Redis is the history kept in Redis.
type Redis struct {
	client *redis.Client
	prefix string
	keep   int
	where  string // the URL, password hidden
}

var (
	_ Reader = (*Redis)(nil)
	_ Writer = (*Redis)(nil)
)

// OpenRedis connects to the Redis at url (redis://[user:password@]host:port/db,
// or rediss:// for TLS) and checks that it answers. prefix is put before
// every key ("" means DefaultPrefix); keep is how many finished runs are
// kept per job (<= 0 means DefaultKeep), older ones are trimmed as newer
// ones are put. Errors show the URL with its password hidden.
func OpenRedis(ctx context.Context, url string, prefix string, keep int) (*Redis, error) {
	where := connectors.Redacted(url)
	if url == "" {
		return nil, errors.New("history: a Redis URL is required (redis://host:port/db)")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		// url.Parse errors quote the whole URL, password included.
		msg := strings.ReplaceAll(err.Error(), url, where)
		return nil, fmt.Errorf("history: Redis URL %s: %s (want redis://[user:password@]host:port/db)", where, msg)
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if keep <= 0 {
		keep = DefaultKeep
	}
	h := &Redis{client: redis.NewClient(opts), prefix: prefix, keep: keep, where: where}
	if err := h.client.Ping(ctx).Err(); err != nil {
		h.client.Close()
		return nil, h.fail("connect", err)
	}
	return h, nil
}

// Close closes the connections.
func (h *Redis) Close() error { return h.client.Close() }

// fail wraps a Redis error with where it happened, hiding the password
// should the error quote the URL.
func (h *Redis) fail(what string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "://") {
		msg = connectors.Redacted(msg)
	}
	return fmt.Errorf("history: Redis %s: %s: %s", h.where, what, msg)
}

func (h *Redis) runKey(job, run string) string { return h.prefix + "run:" + job + ":" + run }
func (h *Redis) runsKey(job string) string     { return h.prefix + "runs:" + job }

func checkJob(job string) error {
	if job == "" || strings.Contains(job, ":") {
		return fmt.Errorf("history: job name %q: want a non-empty name without ':'", job)
	}
	return nil
}

func checkNames(job, run string) error {
	if err := checkJob(job); err != nil {
		return err
	}
	if run == "" {
		return errors.New("history: a run id is required")
	}
	return nil
}

// score orders a job's runs: by start time, in Unix microseconds (exact in
// a float64 for any date a run can have).
func score(run *engine.RunRecord) float64 { return float64(run.Started.UnixMicro()) }

// Put keeps a finished run with its partitions' summaries, replacing the
// entry of a run put before under the same id, and trims the job's runs to
// the newest keep, all in one MULTI/EXEC.
func (h *Redis) Put(ctx context.Context, run *engine.RunRecord, parts []engine.PartitionRecord) error {
	if run == nil {
		return errors.New("history: put of a nil run")
	}
	if err := checkNames(run.Job, run.ID); err != nil {
		return err
	}
	rec, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("history: run %s of job %q: %w", run.ID, run.Job, err)
	}
	sums := make([]Partition, len(parts))
	for i, p := range parts {
		sums[i] = Summarize(p)
	}
	partsJSON, err := json.Marshal(sums)
	if err != nil {
		return fmt.Errorf("history: run %s of job %q: %w", run.ID, run.Job, err)
	}
	key, set := h.runKey(run.Job, run.ID), h.runsKey(run.Job)
	me := redis.Z{Score: score(run), Member: run.ID}
	put := func(tx *redis.Tx) error {
		drop, err := h.dropped(ctx, tx, set, me)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			// HSET on a fresh key: no field of an older layout survives.
			p.Del(ctx, key)
			p.HSet(ctx, key, fieldRun, rec, fieldPartitions, partsJSON)
			p.ZAdd(ctx, set, me)
			if len(drop) > 0 {
				members := make([]any, len(drop))
				keys := make([]string, len(drop))
				for i, id := range drop {
					members[i], keys[i] = id, h.runKey(run.Job, id)
				}
				p.ZRem(ctx, set, members...)
				p.Del(ctx, keys...)
			}
			return nil
		})
		return err
	}
	for i := range putAttempts {
		err = h.client.Watch(ctx, put, set)
		if !errors.Is(err, redis.TxFailedErr) || i == putAttempts-1 {
			break
		}
		// Another put of the job's history went first: read again, after
		// a short pause that spreads out puts that keep colliding.
		select {
		case <-ctx.Done():
			return h.fail(fmt.Sprintf("put run %s of job %q", run.ID, run.Job), ctx.Err())
		case <-time.After(time.Duration(1+rand.IntN(1<<min(i, 6))) * time.Millisecond):
		}
	}
	if err != nil {
		return h.fail(fmt.Sprintf("put run %s of job %q", run.ID, run.Job), err)
	}
	return nil
}

// dropped returns the runs of the job's set to trim once me is added (me
// itself if it is older than the newest keep), read under the WATCH of the
// set. It reads only the set's tail: a member ranked among the keep-1
// newest before the put is among the keep newest after it.
func (h *Redis) dropped(ctx context.Context, tx *redis.Tx, set string, me redis.Z) ([]string, error) {
	var card *redis.IntCmd
	var was *redis.FloatCmd
	var tail *redis.ZSliceCmd
	if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.ZCard(ctx, set)
		was = p.ZScore(ctx, set, me.Member.(string))
		tail = p.ZRevRangeWithScores(ctx, set, int64(h.keep-1), -1)
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	n, err := card.Result()
	if err != nil {
		return nil, err
	}
	member := true
	if err := was.Err(); errors.Is(err, redis.Nil) {
		member = false
	} else if err != nil {
		return nil, err
	}
	tailZ, err := tail.Result()
	if err != nil {
		return nil, err
	}
	after := n
	if !member {
		after++
	}
	if after <= int64(h.keep) {
		return nil, nil
	}
	// The set's order is ZREVRANGE's: score descending, then member
	// descending. head is the members ahead of the tail, me left out.
	head := min(n, int64(h.keep-1))
	inTail := false
	cands := make([]redis.Z, 0, len(tailZ)+1)
	for _, z := range tailZ {
		if z.Member.(string) == me.Member.(string) {
			inTail = true
			continue
		}
		cands = append(cands, z)
	}
	if member && !inTail {
		head--
	}
	cands = append(cands, me)
	sort.Slice(cands, func(i, j int) bool { return newer(cands[i], cands[j]) })
	var drop []string
	for i, z := range cands {
		// Every tail member is behind the head; me, when it is ahead of
		// the whole tail, ranks at most head, which is kept anyway.
		if head+int64(i) >= int64(h.keep) {
			drop = append(drop, z.Member.(string))
		}
	}
	return drop, nil
}

// newer reports whether a ranks before b in the newest-first order.
func newer(a, b redis.Z) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.Member.(string) > b.Member.(string)
}

// List returns up to limit of the job's finished runs, newest first
// (limit <= 0: all that are kept). A job with no history has none.
func (h *Redis) List(ctx context.Context, job string, limit int) ([]engine.RunRecord, error) {
	if err := checkJob(job); err != nil {
		return nil, err
	}
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit - 1)
	}
	ids, err := h.client.ZRevRange(ctx, h.runsKey(job), 0, stop).Result()
	if err != nil {
		return nil, h.fail(fmt.Sprintf("list the runs of job %q", job), err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	if _, err := h.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, h.runKey(job, id), fieldRun)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, h.fail(fmt.Sprintf("list the runs of job %q", job), err)
	}
	out := make([]engine.RunRecord, 0, len(ids))
	for i, c := range cmds {
		data, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue // trimmed since the set was read
		}
		if err != nil {
			return nil, h.fail(fmt.Sprintf("list the runs of job %q", job), err)
		}
		var rec engine.RunRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, fmt.Errorf("history: run %s of job %q: %w", ids[i], job, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Get returns one finished run with its partitions' summaries, or an
// error wrapping engine.ErrNotFound.
func (h *Redis) Get(ctx context.Context, job, run string) (*Entry, error) {
	if err := checkNames(job, run); err != nil {
		return nil, err
	}
	vals, err := h.client.HMGet(ctx, h.runKey(job, run), fieldRun, fieldPartitions).Result()
	if err != nil {
		return nil, h.fail(fmt.Sprintf("get run %s of job %q", run, job), err)
	}
	rec, _ := vals[0].(string)
	if rec == "" {
		return nil, fmt.Errorf("history: run %s of job %q: %w", run, job, engine.ErrNotFound)
	}
	e := &Entry{}
	if err := json.Unmarshal([]byte(rec), &e.Run); err != nil {
		return nil, fmt.Errorf("history: run %s of job %q: %w", run, job, err)
	}
	if ps, _ := vals[1].(string); ps != "" {
		if err := json.Unmarshal([]byte(ps), &e.Partitions); err != nil {
			return nil, fmt.Errorf("history: run %s of job %q: partitions: %w", run, job, err)
		}
	}
	return e, nil
}
