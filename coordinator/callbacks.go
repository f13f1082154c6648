package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// A finished run's callbacks are an outbox: the entry is created in the
// Multi that ends the run, the leader posts it and deletes it once every
// URL has answered (or given up on). A leader that dies in between leaves
// the entry to its successor, so a run's end is never unheard of; the
// receiver sees the run id as Idempotency-Key for the one case where it
// hears it twice (a leader that died after posting, before deleting).
// The key is the run id and the time the run ended: a failed run that is
// continued and ends again is a new end, posted with a new key.

// CallbackEntry is a run's callbacks still to be posted, in
// /callbacks/JOB~RUN.
type CallbackEntry struct {
	Job  string          `json:"job"`
	Run  string          `json:"run"`
	Key  string          `json:"key"` // the Idempotency-Key
	URLs []string        `json:"urls"`
	Body json.RawMessage `json:"body"`
}

func callbackPath(job, run string, ended time.Time) string {
	return store.Join(callbacksPath, job+"~"+callbackKey(run, ended))
}

func callbackKey(run string, ended time.Time) string {
	return run + "~" + ended.UTC().Format("20060102T150405.000000Z")
}

// callbackOps are the ops that leave a run's callbacks to post, for the
// Multi that ends it: none for a run abandoned on purpose, or a job
// without callbacks.
func (s *RunState) callbackOps(ctx context.Context, run *engine.RunRecord) ([]store.Op, error) {
	if run.State != engine.RunSucceeded && run.State != engine.RunFailed {
		return nil, nil
	}
	var job engine.Job
	if _, err := s.get(ctx, runJobPath(run.Job, run.ID), &job); err != nil {
		return nil, ignoreNoNode(err) // a run without its spec: nobody asked
	}
	return s.callbackOpsOf(ctx, &job, run)
}

// callbackOpsOf are callbackOps for a run whose spec the caller has.
func (s *RunState) callbackOpsOf(ctx context.Context, job *engine.Job, run *engine.RunRecord) ([]store.Op, error) {
	urls := engine.CallbackURLs(job, run)
	if len(urls) == 0 {
		return nil, nil
	}
	body, err := engine.CallbackBody(run)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(CallbackEntry{Job: run.Job, Run: run.ID, Key: callbackKey(run.ID, run.Finished), URLs: urls, Body: body})
	if err != nil {
		return nil, err
	}
	return []store.Op{store.CreateOp(callbackPath(run.Job, run.ID, run.Finished), data, 0)}, nil
}

// postCallbacks starts posting every callback entry not being posted
// already.
func (n *Node) postCallbacks(ctx context.Context) {
	kids, err := n.cfg.Store.Children(ctx, callbacksPath)
	if err != nil {
		return
	}
	for _, k := range kids {
		n.postCallback(ctx, store.Join(callbacksPath, k))
	}
}

// postCallback posts one entry's callbacks in the background, as long as
// ctx (the leader's membership) lasts. The poster claims the entry with an
// ephemeral child, so one node posts it at a time and a dead poster's
// claim goes with its session; each URL that answered is struck off the
// entry, and the entry deleted once none is left.
func (n *Node) postCallback(ctx context.Context, path string) {
	n.mu.Lock()
	if n.posting[path] {
		n.mu.Unlock()
		return
	}
	n.posting[path] = true
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			delete(n.posting, path)
			n.mu.Unlock()
		}()
		s := n.cfg.Store
		claim := store.Join(path, "poster")
		if _, err := s.Create(ctx, claim, []byte(n.ID()), store.Ephemeral); err != nil {
			return // posted by another node, or gone
		}
		client := n.cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		for ctx.Err() == nil {
			data, st, err := s.Get(ctx, path)
			if err != nil {
				return
			}
			var e CallbackEntry
			if err := json.Unmarshal(data, &e); err != nil || len(e.URLs) == 0 {
				break
			}
			err = engine.PostCallback(ctx, client, e.URLs[0], e.Key, e.Body, n.sleep, func(attempt int, err error) {
				n.log.Warn("callback failed; retrying", "job", e.Job, "run", e.Run, "attempt", attempt, "err", err)
			})
			if ctx.Err() != nil {
				return // the next leader posts what is left
			}
			if err != nil {
				n.log.Error("callback given up", "job", e.Job, "run", e.Run, "err", err)
			}
			e.URLs = e.URLs[1:]
			next, err := json.Marshal(e)
			if err != nil {
				return
			}
			if _, err := s.Set(ctx, path, next, st.Version); err != nil {
				return
			}
		}
		_, err := s.Multi(ctx, store.DeleteOp(claim, store.AnyVersion), store.DeleteOp(path, store.AnyVersion))
		if err != nil && !errors.Is(err, store.ErrNoNode) && ctx.Err() == nil {
			n.log.Warn("cannot delete a posted callback entry", "entry", path, "err", err)
		}
	}()
}
