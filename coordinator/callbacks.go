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

// CallbackEntry is a run's callbacks still to be posted, in
// /callbacks/JOB~RUN.
type CallbackEntry struct {
	Job  string          `json:"job"`
	Run  string          `json:"run"`
	URLs []string        `json:"urls"`
	Body json.RawMessage `json:"body"`
}

func callbackPath(job, run string) string { return store.Join(callbacksPath, job+"~"+run) }

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
	data, err := json.Marshal(CallbackEntry{Job: run.Job, Run: run.ID, URLs: urls, Body: body})
	if err != nil {
		return nil, err
	}
	p := callbackPath(run.Job, run.ID)
	ok, _, err := s.S.Exists(ctx, p)
	if err != nil || ok {
		return nil, err // a failed run that ends again: one entry at a time
	}
	return []store.Op{store.CreateOp(p, data, 0)}, nil
}

// postCallbacks starts posting every callback entry not being posted
// already by this node.
func (n *Node) postCallbacks(ctx context.Context) {
	kids, err := n.cfg.Store.Children(ctx, callbacksPath)
	if err != nil {
		return
	}
	for _, k := range kids {
		n.postCallback(store.Join(callbacksPath, k))
	}
}

// postCallback posts one entry's callbacks in the background (the node's
// Stop waits for it) and deletes the entry once they are through.
func (n *Node) postCallback(path string) {
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
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var e CallbackEntry
		if err := getJSON(ctx, n.cfg.Store, path, &e); err != nil {
			return // posted by another leader meanwhile
		}
		client := n.cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		for _, url := range e.URLs {
			err := engine.PostCallback(ctx, client, url, e.Run, e.Body, n.sleep, func(attempt int, err error) {
				n.log.Warn("callback failed; retrying", "job", e.Job, "run", e.Run, "attempt", attempt, "err", err)
			})
			if err != nil {
				n.log.Error("callback given up", "job", e.Job, "run", e.Run, "err", err)
			}
		}
		if err := n.cfg.Store.Delete(ctx, path, store.AnyVersion); err != nil && !errors.Is(err, store.ErrNoNode) {
			n.log.Warn("cannot delete a posted callback entry", "entry", path, "err", err)
		}
	}()
}
