package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/engine"
)

// maxBody caps a request body: a job spec is a few kilobytes.
const maxBody = 1 << 20

// api is the JSON API every node serves. Reads are open; writes need the
// bearer token when one is configured.
type api struct {
	node  *coordinator.Node
	token string
	// check reaches a submitted job's stores before it is filed, as
	// datashift check does.
	check func(ctx context.Context, job *engine.Job) error
	// metrics serves /metrics and ui every path outside /api/, when set.
	metrics, ui http.Handler
}

func (a *api) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/jobs", a.write(a.submit))
	mux.HandleFunc("GET /api/jobs", a.jobs)
	mux.HandleFunc("GET /api/jobs/{name}", a.job)
	mux.HandleFunc("PUT /api/jobs/{name}", a.write(a.update))
	mux.HandleFunc("DELETE /api/jobs/{name}", a.write(a.delete))
	mux.HandleFunc("POST /api/jobs/{name}/trigger", a.write(a.trigger))
	mux.HandleFunc("POST /api/jobs/{name}/pause", a.write(a.pause))
	mux.HandleFunc("POST /api/jobs/{name}/resume", a.write(a.resume))
	mux.HandleFunc("GET /api/jobs/{name}/fires", a.fires)
	mux.HandleFunc("GET /api/jobs/{name}/runs", a.runs)
	mux.HandleFunc("GET /api/runs/{job}/{run}", a.run)
	mux.HandleFunc("GET /api/nodes", a.nodes)
	mux.HandleFunc("GET /api/config", a.getConfig)
	mux.HandleFunc("PUT /api/config", a.write(a.putConfig))
	mux.HandleFunc("/api/", noRoute(mux))
	if a.metrics != nil {
		mux.Handle("GET /metrics", a.metrics)
	}
	if a.ui != nil {
		// "/" and not "GET /": a method pattern on / would conflict with
		// "/api/" (ServeMux panics); the UI answers other methods 405.
		mux.Handle("/", a.ui)
	}
	return mux
}

// noRoute answers, in JSON, a request no API route takes: 405 naming the
// methods the path has, or 404.
func noRoute(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/api/" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) == 0 {
			fail(w, http.StatusNotFound, fmt.Errorf("no such API route: %s %s", r.Method, r.URL.Path))
			return
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		fail(w, http.StatusMethodNotAllowed, fmt.Errorf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
	}
}

// readBody reads a write's body, answering 413 when it is over the cap.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("the request body is over %d bytes", maxBody))
		return nil, false
	}
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return nil, false
	}
	return body, true
}

// write wraps a handler that changes the cluster: the token is checked and
// the body capped.
func (a *api) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="datashift"`)
				fail(w, http.StatusUnauthorized, errors.New("this node needs a bearer token for changes (Authorization: Bearer …)"))
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r)
	}
}

// errorBody is every error answer. Field is the spec field at fault (the
// first, when several are); Fields lists them all.
type errorBody struct {
	Error  string   `json:"error"`
	Field  string   `json:"field,omitempty"`
	Fields []string `json:"fields,omitempty"`
}

func fail(w http.ResponseWriter, code int, err error) {
	body := errorBody{Error: err.Error()}
	var ses engine.SpecErrors
	var se *engine.SpecError
	switch {
	case errors.As(err, &ses) && len(ses) > 0:
		body.Field = ses[0].Field
		for _, e := range ses {
			body.Fields = append(body.Fields, e.Field)
		}
	case errors.As(err, &se):
		body.Field, body.Fields = se.Field, []string{se.Field}
	}
	reply(w, code, body)
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// failFor answers err with the status that says whose mistake it is.
func failFor(w http.ResponseWriter, err error) {
	var se *engine.SpecError
	var ses engine.SpecErrors
	switch {
	case errors.As(err, &ses), errors.As(err, &se):
		fail(w, http.StatusBadRequest, err)
	case errors.Is(err, coordinator.ErrNoJob), errors.Is(err, engine.ErrNotFound):
		fail(w, http.StatusNotFound, err)
	case errors.Is(err, coordinator.ErrJobExists), errors.Is(err, coordinator.ErrHasDependants):
		fail(w, http.StatusConflict, err)
	default:
		fail(w, http.StatusInternalServerError, err)
	}
}

// readJob decodes a job spec body (YAML or JSON) and checks it.
func (a *api) readJob(w http.ResponseWriter, r *http.Request) (*engine.Job, bool) {
	body, ok := readBody(w, r)
	if !ok {
		return nil, false
	}
	cfg, _, err := a.node.Cluster().Config(r.Context())
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return nil, false
	}
	job, err := engine.ParseJobWith(body, cfg.JobDefaults())
	if err != nil {
		fail(w, http.StatusBadRequest, hideSecrets(err, body))
		return nil, false
	}
	if a.check != nil {
		if err := a.check(r.Context(), job); err != nil {
			failFor(w, hideSecrets(err, body))
			return nil, false
		}
	}
	return job, true
}

// hideSecrets takes out of err's message every password of the spec in
// body: a refusal may quote the value it refuses (a callback URL that is
// not http, a DSN in the wrong field), and no answer shows a password.
// Every string of the body that the redactor changes is replaced by its
// redacted form, as written and as %q writes it.
func hideSecrets(err error, body []byte) error {
	var tree any
	_ = yaml.Unmarshal(body, &tree) // what it can: a spec refused for its syntax quotes no values
	var pairs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(k)
				walk(c)
			}
		case map[any]any: // a mapping with keys that are not all strings
			for k, c := range v {
				walk(k)
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		case string:
			if red := connectors.Redacted(v); red != v {
				pairs = append(pairs, v, red)
				if q, rq := strconv.Quote(v), strconv.Quote(red); q[1:len(q)-1] != v {
					pairs = append(pairs, q[1:len(q)-1], rq[1:len(rq)-1])
				}
			}
		}
	}
	walk(tree)
	if len(pairs) == 0 {
		return err
	}
	msg := strings.NewReplacer(pairs...).Replace(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedError{err: err, msg: msg}
}

// redactedError is an error shown with its passwords replaced; errors.As
// still finds what it wraps (the spec errors and their fields).
type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

type jobBody struct {
	Name     string                    `json:"name"`
	Owner    string                    `json:"owner"`
	Spec     *engine.Job               `json:"spec,omitempty"`
	Schedule *coordinator.ScheduleInfo `json:"schedule,omitempty"`
	// LastRun is the job's newest run, going or over (lists and job
	// pages; absent before the first run).
	LastRun *engine.RunRecord `json:"last_run,omitempty"`
}

func (a *api) submit(w http.ResponseWriter, r *http.Request) {
	job, ok := a.readJob(w, r)
	if !ok {
		return
	}
	owner, err := a.node.Cluster().SubmitJob(r.Context(), job)
	if err != nil {
		failFor(w, err)
		return
	}
	reply(w, http.StatusCreated, jobBody{Name: job.Name, Owner: owner, Spec: job.Redacted()})
}

func (a *api) update(w http.ResponseWriter, r *http.Request) {
	job, ok := a.readJob(w, r)
	if !ok {
		return
	}
	if name := r.PathValue("name"); job.Name != name {
		fail(w, http.StatusBadRequest, &engine.SpecError{Job: job.Name, Field: "name", Reason: fmt.Sprintf("the spec names job %q, the path %q", job.Name, name)})
		return
	}
	if err := a.node.Cluster().UpdateJob(r.Context(), job); err != nil {
		failFor(w, err)
		return
	}
	_, owner, err := a.node.Cluster().Job(r.Context(), job.Name)
	if err != nil {
		failFor(w, err)
		return
	}
	reply(w, http.StatusOK, jobBody{Name: job.Name, Owner: owner, Spec: job.Redacted()})
}

func (a *api) jobs(w http.ResponseWriter, r *http.Request) {
	list, err := a.node.Cluster().Overview(r.Context())
	if err != nil {
		failFor(w, err)
		return
	}
	out := make([]jobBody, 0, len(list))
	for _, j := range list {
		out = append(out, jobBody{Name: j.Job.Name, Owner: j.Owner, Spec: j.Job.Redacted(), Schedule: j.Schedule, LastRun: j.LastRun})
	}
	reply(w, http.StatusOK, out)
}

func (a *api) job(w http.ResponseWriter, r *http.Request) {
	job, owner, err := a.node.Cluster().Job(r.Context(), r.PathValue("name"))
	if err != nil {
		failFor(w, err)
		return
	}
	sched, err := a.node.Cluster().Schedule(r.Context(), job)
	if err != nil {
		failFor(w, err)
		return
	}
	body := jobBody{Name: job.Name, Owner: owner, Spec: job.Redacted(), Schedule: sched}
	runs, err := a.node.Cluster().Runs(r.Context(), job.Name, 1)
	if err != nil {
		failFor(w, err)
		return
	}
	if len(runs) > 0 {
		body.LastRun = &runs[0]
	}
	reply(w, http.StatusOK, body)
}

func (a *api) pause(w http.ResponseWriter, r *http.Request) {
	a.setPaused(w, r, true)
}

func (a *api) resume(w http.ResponseWriter, r *http.Request) {
	a.setPaused(w, r, false)
}

func (a *api) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	name := r.PathValue("name")
	c := a.node.Cluster()
	do := c.Resume
	if paused {
		do = c.Pause
	}
	if err := do(r.Context(), name); err != nil {
		failFor(w, err)
		return
	}
	job, _, err := c.Job(r.Context(), name)
	if err != nil {
		failFor(w, err)
		return
	}
	sched, err := c.Schedule(r.Context(), job)
	if err != nil {
		failFor(w, err)
		return
	}
	reply(w, http.StatusOK, sched)
}

func (a *api) fires(w http.ResponseWriter, r *http.Request) {
	fires, err := a.node.Cluster().Fires(r.Context(), r.PathValue("name"))
	if err != nil {
		failFor(w, err)
		return
	}
	reply(w, http.StatusOK, fires)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	if err := a.node.Cluster().DeleteJob(r.Context(), r.PathValue("name")); err != nil {
		failFor(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) trigger(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	entry, err := a.node.Cluster().Trigger(r.Context(), name, coordinator.TriggerManual)
	if err != nil {
		failFor(w, err)
		return
	}
	reply(w, http.StatusAccepted, map[string]string{"job": name, "queued": entry})
}

func (a *api) runs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, _, err := a.node.Cluster().Job(r.Context(), name); err != nil {
		failFor(w, err)
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fail(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a whole number of runs, 1 or more", v))
			return
		}
		limit = n
	}
	runs, err := a.node.Cluster().Runs(r.Context(), name, limit)
	if err != nil {
		failFor(w, err)
		return
	}
	if runs == nil {
		runs = []engine.RunRecord{}
	}
	reply(w, http.StatusOK, runs)
}

// partitionBody is a partition as the run API shows it.
type partitionBody struct {
	ID         string            `json:"id"`
	Range      string            `json:"range"`
	State      string            `json:"state"`
	Owner      string            `json:"owner,omitempty"`
	Attempts   int               `json:"attempts"`
	Lease      int64             `json:"lease"`
	EstRows    int64             `json:"est_rows"`
	Error      string            `json:"error,omitempty"`
	Waiting    string            `json:"waiting,omitempty"`
	Checkpoint engine.Checkpoint `json:"checkpoint"`
}

type runBody struct {
	engine.RunRecord
	Partitions []partitionBody `json:"partitions"`
}

func (a *api) run(w http.ResponseWriter, r *http.Request) {
	st, err := a.node.Cluster().Run(r.Context(), r.PathValue("job"), r.PathValue("run"))
	if err != nil {
		failFor(w, err)
		return
	}
	body := runBody{RunRecord: st.Run, Partitions: []partitionBody{}}
	for _, p := range st.Finished {
		body.Partitions = append(body.Partitions, partitionBody{
			ID: p.ID, Range: p.Range, State: p.State, Owner: p.Owner, Attempts: p.Attempts, Lease: p.Lease, Error: p.Error,
			Checkpoint: engine.Checkpoint{Rows: p.Rows, Bytes: p.Bytes, BadRows: p.BadRows, Done: p.State == engine.Done},
		})
	}
	for _, p := range st.Partitions {
		body.Partitions = append(body.Partitions, partitionBody{
			ID: p.ID, Range: p.Range.String(), State: p.State, Owner: p.Owner, Attempts: p.Attempts, Lease: p.Lease,
			EstRows: p.EstRows, Error: p.Error, Waiting: st.Waiting[p.ID], Checkpoint: p.Checkpoint,
		})
	}
	reply(w, http.StatusOK, body)
}

type nodeBody struct {
	ID        string                 `json:"id"`
	Leader    bool                   `json:"leader"`
	Info      coordinator.NodeInfo   `json:"info"`
	Resources *coordinator.Resources `json:"resources,omitempty"`
}

type nodesBody struct {
	Leader string     `json:"leader"`
	Self   string     `json:"self"`
	Nodes  []nodeBody `json:"nodes"`
	Time   time.Time  `json:"time"`
}

func (a *api) nodes(w http.ResponseWriter, r *http.Request) {
	c := a.node.Cluster()
	members, infos, res, err := c.Members(r.Context())
	if err != nil {
		failFor(w, err)
		return
	}
	leader, err := c.Leader(r.Context())
	if err != nil {
		failFor(w, err)
		return
	}
	out := nodesBody{Leader: leader, Self: a.node.ID(), Nodes: []nodeBody{}, Time: time.Now().UTC()}
	for _, m := range members {
		nb := nodeBody{ID: m.ID, Leader: m.ID == leader, Info: infos[m.ID]}
		if rr, ok := res[m.ID]; ok {
			nb.Resources = &rr
		}
		out.Nodes = append(out.Nodes, nb)
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].ID < out.Nodes[j].ID })
	reply(w, http.StatusOK, out)
}

// getConfig answers the cluster's settings with their revision as the
// ETag, which a PUT may give back in If-Match to change only that one.
func (a *api) getConfig(w http.ResponseWriter, r *http.Request) {
	cfg, rev, err := a.node.Cluster().Config(r.Context())
	if err != nil {
		failFor(w, err)
		return
	}
	w.Header().Set("ETag", revisionTag(rev))
	reply(w, http.StatusOK, cfg)
}

// putConfig replaces the cluster's settings; every node applies them as it
// hears of the change. With If-Match it replaces only the revision read
// (412 when another change came first).
func (a *api) putConfig(w http.ResponseWriter, r *http.Request) {
	ifRev := coordinator.AnyRevision
	if m := r.Header.Get("If-Match"); m != "" && m != "*" {
		n, err := strconv.ParseInt(strings.Trim(m, `"`), 10, 64)
		if err != nil || n < 0 {
			fail(w, http.StatusBadRequest, fmt.Errorf("If-Match %s: want the ETag GET /api/config answered", m))
			return
		}
		ifRev = n
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var cfg coordinator.ClusterConfig
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("config: %w", err))
		return
	}
	rev, err := a.node.Cluster().SetConfig(r.Context(), cfg, ifRev)
	if errors.Is(err, coordinator.ErrConfigChanged) {
		fail(w, http.StatusPreconditionFailed, err)
		return
	}
	if err != nil {
		failFor(w, err)
		return
	}
	w.Header().Set("ETag", revisionTag(rev))
	reply(w, http.StatusOK, cfg)
}

func revisionTag(rev int64) string { return strconv.Quote(strconv.FormatInt(rev, 10)) }
