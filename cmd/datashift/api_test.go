package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/demodata"
)

// testToken is the bearer token of the nodes these tests start with one.
const testToken = "t0ken-for-tests"

// apiNode is a real node on an in-memory embedded store, its API served
// by httptest.
type apiNode struct {
	t     *testing.T
	node  *coordinator.Node
	srv   *httptest.Server
	token string
}

type nodeOpts struct {
	token string
	// noCheck files specs without reaching their stores (for DSNs of
	// databases the test has not got).
	noCheck bool
	// wrap, if set, wraps the node's store session.
	wrap func(store.Store) store.Store
	// metrics serves GET /metrics as `datashift node` does.
	metrics bool
	// ui, if set, is served at / (the web UI).
	ui http.Handler
	// history, if set, keeps the node's finished runs (Redis).
	history coordinator.History
}

func startAPI(t *testing.T, o nodeOpts) *apiNode {
	t.Helper()
	db := embedded.Memory()
	sess, err := db.Session()
	if err != nil {
		t.Fatal(err)
	}
	var s store.Store = sess
	if o.wrap != nil {
		s = o.wrap(sess)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := coordinator.Config{Store: s, Addr: "127.0.0.1:0", Slots: 2,
		Tick: 100 * time.Millisecond, ResourceEvery: 100 * time.Millisecond, History: o.history}
	var metrics *nodeMetrics
	if o.metrics {
		if metrics, err = newNodeMetrics(); err != nil {
			t.Fatal(err)
		}
		cfg.Metrics = metrics.counts
	}
	node, err := coordinator.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &api{node: node, token: o.token, check: engine.Check, ui: o.ui}
	if metrics != nil {
		if a.metrics, err = metrics.serve(node, nil); err != nil {
			t.Fatal(err)
		}
	}
	if o.noCheck {
		a.check = nil
	}
	srv := httptest.NewServer(a.routes())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Stop(ctx); err != nil {
			t.Errorf("stop the node: %v", err)
		}
		sess.Close()
		db.Close()
	})
	return &apiNode{t: t, node: node, srv: srv, token: o.token}
}

// answer is what a user sees of one request.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("HTTP %d: %s", a.code, a.body) }

// decode decodes the answer's JSON body into v.
func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json (%s)", ct, a)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, a)
	}
}

// errBody decodes an error answer and checks it is one.
func (a answer) errBody(t *testing.T, code int) errorBody {
	t.Helper()
	if a.code != code {
		t.Fatalf("want HTTP %d, got %s", code, a)
	}
	var e errorBody
	a.decode(t, &e)
	if e.Error == "" {
		t.Fatalf("error answer without an error: %s", a)
	}
	return e
}

// do sends a request with the node's token; call anon for none.
func (n *apiNode) do(method, path, body string) answer {
	n.t.Helper()
	return n.send(method, path, body, n.token)
}

func (n *apiNode) anon(method, path, body string) answer {
	n.t.Helper()
	return n.send(method, path, body, "")
}

// send makes one request; header holds further header names and values,
// in pairs.
func (n *apiNode) send(method, path, body, token string, header ...string) answer {
	n.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.srv.URL+path, r)
	if err != nil {
		n.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := n.srv.Client().Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: b}
}

// source is a demo SQLite table of rows rows, with a folder for sinks.
type source struct {
	dir, path string
	rows      int64
}

func demoSource(t *testing.T, rows int64) source {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, rows); err != nil {
		t.Fatal(err)
	}
	return source{dir: dir, path: src, rows: rows}
}

func (s source) sinkDir(name string) string { return filepath.Join(s.dir, "out-"+name) }

// yaml is a job spec copying the source into a Parquet folder of its own.
func (s source) yaml(name, extra string) string {
	return `name: ` + name + `
source: {type: sqlite, dsn: ` + s.path + `, table: orders, key: [id]}
sink: {type: parquet, dsn: ` + s.sinkDir(name) + `, mode: truncate}
partitions: {target_rows: 2500}
` + extra
}

// jsonSpec is the same spec as JSON, indented with tabs as many tools do.
func (s source) jsonSpec(name string) string {
	b, err := json.MarshalIndent(map[string]any{
		"name":       name,
		"source":     map[string]any{"type": "sqlite", "dsn": s.path, "table": "orders", "key": []string{"id"}},
		"sink":       map[string]any{"type": "parquet", "dsn": s.sinkDir(name), "mode": "truncate"},
		"partitions": map[string]any{"target_rows": 2500},
		"retries":    map[string]any{"backoff": "1s"},
	}, "", "\t")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Submit with YAML and with JSON files the job under the node and answers
// 201 with its owner and the spec as filed; the name is then taken.
func TestAPISubmitListGet(t *testing.T) {
	n := startAPI(t, nodeOpts{})
	src := demoSource(t, 100)

	a := n.do("POST", "/api/jobs", src.yaml("from-yaml", "batch_rows: 500\n"))
	if a.code != http.StatusCreated {
		t.Fatalf("submit YAML: %s", a)
	}
	var got jobBody
	a.decode(t, &got)
	if got.Name != "from-yaml" || got.Owner != n.node.ID() || got.Spec == nil {
		t.Fatalf("submit YAML answered %s; want the job, owner %s, its spec", a, n.node.ID())
	}
	if got.Spec.BatchRows != 500 || got.Spec.Sink.Mode != connectors.Truncate || got.Spec.Partitions.TargetRows != 2500 {
		t.Fatalf("the answer's spec is not the one submitted: %s", a)
	}
	if got.Spec.CommitRows != engine.DefaultCommitRows {
		t.Fatalf("the answer's spec lacks the defaults it was filed with: %s", a)
	}

	a = n.do("POST", "/api/jobs", src.jsonSpec("from-json"))
	if a.code != http.StatusCreated {
		t.Fatalf("submit JSON: %s", a)
	}
	a.decode(t, &got)
	if got.Name != "from-json" || got.Owner != n.node.ID() || time.Duration(got.Spec.Retries.Backoff) != time.Second {
		t.Fatalf("submit JSON answered %s", a)
	}

	// The name is the cluster's: a second submit is refused, YAML or JSON,
	// and the first spec stays.
	for _, body := range []string{src.yaml("from-yaml", "batch_rows: 7\n"), src.jsonSpec("from-yaml")} {
		e := n.do("POST", "/api/jobs", body).errBody(t, http.StatusConflict)
		if !strings.Contains(e.Error, `"from-yaml"`) || !strings.Contains(e.Error, "exists") {
			t.Fatalf("a taken name is refused without saying so: %+v", e)
		}
	}

	a = n.anon("GET", "/api/jobs", "")
	var list []jobBody
	a.decode(t, &list)
	if a.code != http.StatusOK || len(list) != 2 || list[0].Name != "from-json" || list[1].Name != "from-yaml" {
		t.Fatalf("list: %s", a)
	}
	for _, j := range list {
		if j.Owner != n.node.ID() || j.Spec == nil || j.Spec.Name != j.Name {
			t.Fatalf("list shows %+v", j)
		}
	}
	if list[1].Spec.BatchRows != 500 {
		t.Fatalf("a refused submit changed the spec: %s", a)
	}

	a = n.anon("GET", "/api/jobs/from-yaml", "")
	a.decode(t, &got)
	if a.code != http.StatusOK || got.Name != "from-yaml" || got.Owner != n.node.ID() || got.Spec.Source.Table != "orders" || got.Spec.BatchRows != 500 {
		t.Fatalf("get: %s", a)
	}
}

// An empty cluster lists no jobs as [], not null.
func TestAPIEmptyList(t *testing.T) {
	n := startAPI(t, nodeOpts{})
	if a := n.anon("GET", "/api/jobs", ""); a.code != http.StatusOK || strings.TrimSpace(string(a.body)) != "[]" {
		t.Fatalf("empty list: %s", a)
	}
}

// What is not a good spec is refused with 400 and why, naming the field
// where there is one; nothing is filed.
func TestAPIRefusesBadSpecs(t *testing.T) {
	n := startAPI(t, nodeOpts{})
	src := demoSource(t, 100)
	good := src.yaml("bad", "")
	cases := []struct {
		name, body string
		field      string // "" for none
		says       string
	}{
		{"malformed YAML", "name: bad\nsource: {type: sqlite\n", "", "job spec: line 1: did not find expected ',' or '}'"},
		{"malformed JSON", `{"name": "bad", "source": {"type": "sqlite",}`, "", "job spec: line 1: did not find expected ',' or '}'"},
		{"not a mapping", `["a list"]`, "", "job spec: want a mapping of fields (name, source, sink,"},
		{"empty body", "", "", "job spec: the spec is empty: a job needs at least name, source and sink"},
		{"unknown field", good + "colour: blue\n", "colour", `job "bad": colour: unknown field (known: name, source, sink,`},
		{"misspelt field, JSON", `{"name": "bad", "source": {"type": "sqlite", "dsn": "x", "table": "orders"}, "sink": {"type": "parquet", "dsn": "y", "create_tabel": true}}`,
			"sink.create_tabel", `job "bad": sink.create_tabel: unknown field (did you mean create_table?)`},
		{"bad sink mode", strings.Replace(good, "mode: truncate", "mode: merge", 1), "sink.mode", `must be append, truncate or upsert (got "merge")`},
		{"bad cron", good + "schedule: {cron: \"every tuesday\"}\n", "schedule.cron", "schedule.cron"},
		{"bad cron, JSON", `{"name": "bad", "source": {"type": "sqlite", "dsn": "` + src.path + `", "table": "orders"},
			"sink": {"type": "parquet", "dsn": "` + src.sinkDir("bad") + `"}, "schedule": {"cron": "61 * * * *"}}`, "schedule.cron", "schedule.cron"},
		{"bad time zone", good + "schedule: {cron: \"@hourly\", timezone: Mars/Olympus}\n", "schedule.timezone", "Mars/Olympus"},
		{"bad name", strings.Replace(good, "name: bad", "name: \"-x\"", 1), "name", "must be 1-128"},
		// What only the store can tell: Check opens the source.
		{"missing table", strings.Replace(good, "table: orders", "table: no_such_table", 1), "source", "no_such_table"},
		// The SQLite source checks its key as it opens: field source (Check
		// would say source.key of a source that opens).
		{"unknown key", strings.Replace(good, "key: [id]", "key: [no_such_column]", 1), "source|source.key", "no_such_column"},
		{"no source file", strings.Replace(good, src.path, filepath.Join(src.dir, "missing.sqlite"), 1), "source", "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := n.do("POST", "/api/jobs", c.body).errBody(t, http.StatusBadRequest)
			if e.Field != c.field && !strings.Contains("|"+c.field+"|", "|"+e.Field+"|") {
				t.Errorf("field %q, want %q: %+v", e.Field, c.field, e)
			}
			if !strings.Contains(e.Error, c.says) {
				t.Errorf("error %q does not say %q", e.Error, c.says)
			}
		})
	}
	// Several bad fields: each is named.
	body := strings.Replace(good, "mode: truncate", "mode: merge", 1) + "schedule: {cron: nonsense}\n"
	e := n.do("POST", "/api/jobs", body).errBody(t, http.StatusBadRequest)
	if e.Field != "sink.mode" || strings.Join(e.Fields, ",") != "sink.mode,schedule.cron" {
		t.Errorf("two bad fields answered %+v", e)
	}
	if !strings.Contains(e.Error, "sink.mode") || !strings.Contains(e.Error, "schedule.cron") {
		t.Errorf("two bad fields answered %+v", e)
	}
	if a := n.anon("GET", "/api/jobs", ""); strings.TrimSpace(string(a.body)) != "[]" {
		t.Fatalf("a refused spec was filed: %s", a)
	}
}

// A body over 1 MiB is refused with 413 before it is parsed, on submit and
// on update.
func TestAPIOversizeBody(t *testing.T) {
	n := startAPI(t, nodeOpts{})
	src := demoSource(t, 100)
	big := src.yaml("big", "# "+strings.Repeat("x", maxBody)+"\n")
	e := n.do("POST", "/api/jobs", big).errBody(t, http.StatusRequestEntityTooLarge)
	if !strings.Contains(e.Error, "1048576 bytes") {
		t.Errorf("413 says %q", e.Error)
	}
	if a := n.do("POST", "/api/jobs", src.yaml("big", "")); a.code != http.StatusCreated {
		t.Fatalf("submit: %s", a)
	}
	n.do("PUT", "/api/jobs/big", big).errBody(t, http.StatusRequestEntityTooLarge)
	// Just under the cap is read.
	fits := src.yaml("big", "")
	fits += "# " + strings.Repeat("x", maxBody-len(fits)-3) + "\n"
	if len(fits) != maxBody {
		t.Fatalf("test body is %d bytes", len(fits))
	}
	if a := n.do("PUT", "/api/jobs/big", fits); a.code != http.StatusOK {
		t.Fatalf("a body of exactly %d bytes: %s", maxBody, a)
	}
}

// A job that is not there is 404 on every route that names it.
func TestAPIUnknownJob(t *testing.T) {
	n := startAPI(t, nodeOpts{})
	src := demoSource(t, 100)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/jobs/nope", ""},
		{"PUT", "/api/jobs/nope", src.yaml("nope", "")},
		{"DELETE", "/api/jobs/nope", ""},
		{"POST", "/api/jobs/nope/trigger", ""},
		{"GET", "/api/jobs/nope/runs", ""},
	} {
		e := n.do(r.method, r.path, r.body).errBody(t, http.StatusNotFound)
		if !strings.Contains(e.Error, `job "nope"`) || !strings.Contains(e.Error, "no such job") {
			t.Errorf("%s %s: %+v", r.method, r.path, e)
		}
	}
	if a := n.anon("GET", "/api/jobs", ""); strings.TrimSpace(string(a.body)) != "[]" {
		t.Fatalf("a PUT of an unknown job filed it: %s", a)
	}
}

// PUT replaces a job's spec where it is filed; the spec must name the job
// of the path, and is checked as a submit is.
func TestAPIUpdate(t *testing.T) {
	n := startAPI(t, nodeOpts{})
	src := demoSource(t, 100)
	if a := n.do("POST", "/api/jobs", src.yaml("upd", "")); a.code != http.StatusCreated {
		t.Fatalf("submit: %s", a)
	}
	e := n.do("PUT", "/api/jobs/upd", src.yaml("other", "")).errBody(t, http.StatusBadRequest)
	if e.Field != "name" || !strings.Contains(e.Error, `"other"`) || !strings.Contains(e.Error, `"upd"`) {
		t.Fatalf("PUT with another name: %+v", e)
	}
	e = n.do("PUT", "/api/jobs/upd", strings.Replace(src.yaml("upd", ""), "mode: truncate", "mode: merge", 1)).errBody(t, http.StatusBadRequest)
	if e.Field != "sink.mode" {
		t.Fatalf("PUT of a bad spec: %+v", e)
	}
	e = n.do("PUT", "/api/jobs/upd", strings.Replace(src.yaml("upd", ""), "table: orders", "table: gone", 1)).errBody(t, http.StatusBadRequest)
	if e.Field != "source" {
		t.Fatalf("PUT of a spec whose table is missing: %+v", e)
	}
	n.do("PUT", "/api/jobs/upd", "{").errBody(t, http.StatusBadRequest)

	a := n.do("PUT", "/api/jobs/upd", src.yaml("upd", "batch_rows: 123\n"))
	var got jobBody
	a.decode(t, &got)
	if a.code != http.StatusOK || got.Name != "upd" || got.Owner != n.node.ID() || got.Spec.BatchRows != 123 {
		t.Fatalf("PUT: %s", a)
	}
	n.anon("GET", "/api/jobs/upd", "").decode(t, &got)
	if got.Spec.BatchRows != 123 {
		t.Fatalf("GET after PUT shows batch_rows %d", got.Spec.BatchRows)
	}
}

// With a token, every write needs it; reads never do.
func TestAPIToken(t *testing.T) {
	n := startAPI(t, nodeOpts{token: testToken})
	src := demoSource(t, 100)
	writes := []struct{ method, path, body string }{
		{"POST", "/api/jobs", src.yaml("tok", "")},
		{"PUT", "/api/jobs/tok", src.yaml("tok", "batch_rows: 9\n")},
		{"POST", "/api/jobs/tok/trigger", ""},
		{"DELETE", "/api/jobs/tok", ""},
	}
	for _, w := range writes {
		for name, hdr := range map[string]string{
			"none":      "",
			"wrong":     "Bearer not-the-token",
			"prefix":    "Bearer " + testToken[:5],
			"longer":    "Bearer " + testToken + "x",
			"no scheme": testToken,
			"basic":     "Basic " + testToken,
		} {
			req, _ := http.NewRequest(w.method, n.srv.URL+w.path, strings.NewReader(w.body))
			if hdr != "" {
				req.Header.Set("Authorization", hdr)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := answer{code: resp.StatusCode, header: resp.Header, body: b}
			e := a.errBody(t, http.StatusUnauthorized)
			if !strings.Contains(e.Error, "bearer token") || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %s token: %s (WWW-Authenticate %q)", w.method, w.path, name, a, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	// Nothing was filed by the refused writes.
	if a := n.anon("GET", "/api/jobs", ""); a.code != http.StatusOK || strings.TrimSpace(string(a.body)) != "[]" {
		t.Fatalf("read without token: %s", a)
	}
	// With the token each write goes through; reads need none.
	want := []int{http.StatusCreated, http.StatusOK, http.StatusAccepted, http.StatusNoContent}
	for i, w := range writes {
		if a := n.do(w.method, w.path, w.body); a.code != want[i] {
			t.Fatalf("%s %s with the token: %s", w.method, w.path, a)
		}
		if i == 1 {
			for _, p := range []string{"/api/jobs", "/api/jobs/tok", "/api/jobs/tok/runs", "/api/nodes"} {
				if a := n.anon("GET", p, ""); a.code != http.StatusOK {
					t.Fatalf("GET %s without token: %s", p, a)
				}
			}
		}
		if w.path == "/api/jobs/tok/trigger" {
			// The run ends before its job is deleted, and before the
			// test's folders are.
			eventually(t, 30*time.Second, "the triggered run ends", func() bool {
				var runs []engine.RunRecord
				n.anon("GET", "/api/jobs/tok/runs", "").decode(t, &runs)
				return len(runs) == 1 && runs[0].State == engine.RunSucceeded
			})
		}
	}
	// A refused write is refused before its body is read or checked.
	if a := n.anon("POST", "/api/jobs", "{"); a.code != http.StatusUnauthorized {
		t.Fatalf("a bad body without the token: %s", a)
	}
}

// No answer shows a password: not the DSNs' (any form), not a callback
// URL's, not in an error.
func TestAPIHidesPasswords(t *testing.T) {
	const secret = "hunter2"
	check := func(t *testing.T, what string, a answer) {
		t.Helper()
		if strings.Contains(string(a.body), secret) {
			t.Errorf("%s shows the password: %s", what, a)
		}
	}

	t.Run("stores not reached", func(t *testing.T) {
		n := startAPI(t, nodeOpts{noCheck: true})
		spec := `name: pg
source: {type: postgres, dsn: "postgres://copier:` + secret + `@db.internal:5432/shop?sslmode=disable", table: orders, key: [id]}
sink: {type: mysql, dsn: "copier:` + secret + `@tcp(wh.internal:3306)/wh", table: orders}
callbacks: [{url: "https://hook:` + secret + `@hooks.internal/done"}]
`
		a := n.do("POST", "/api/jobs", spec)
		if a.code != http.StatusCreated {
			t.Fatalf("submit: %s", a)
		}
		check(t, "submit", a)
		var got jobBody
		a.decode(t, &got)
		if got.Spec.Source.DSN != "postgres://copier:xxxxx@db.internal:5432/shop?sslmode=disable" ||
			got.Spec.Sink.DSN != "copier:xxxxx@tcp(wh.internal:3306)/wh" ||
			got.Spec.Callbacks[0].URL != "https://hook:xxxxx@hooks.internal/done" {
			t.Fatalf("submit answered %s", a)
		}
		for _, p := range []string{"/api/jobs", "/api/jobs/pg"} {
			a := n.anon("GET", p, "")
			check(t, "GET "+p, a)
			if a.code != http.StatusOK || strings.Count(string(a.body), "xxxxx") != 3 {
				t.Errorf("GET %s: %s", p, a)
			}
		}
		a = n.do("PUT", "/api/jobs/pg", spec+"batch_rows: 10\n")
		check(t, "PUT", a)
		if a.code != http.StatusOK || strings.Count(string(a.body), "xxxxx") != 3 {
			t.Errorf("PUT: %s", a)
		}
		// A spec refused for a field other than the secret one.
		a = n.do("POST", "/api/jobs", strings.Replace(spec, "name: pg", "name: pg2\nsink_typo: 1", 1))
		check(t, "refused submit", a)
		a = n.do("POST", "/api/jobs", spec)
		check(t, "conflict", a)
	})

	t.Run("secret in a bad field", func(t *testing.T) {
		n := startAPI(t, nodeOpts{noCheck: true})
		src := demoSource(t, 10)
		a := n.do("POST", "/api/jobs", src.yaml("cb", `callbacks: [{url: "ftp://hook:`+secret+`@hooks.internal/done"}]`+"\n"))
		e := a.errBody(t, http.StatusBadRequest)
		check(t, "a refused callback URL", a)
		if e.Field != "callbacks[0].url" {
			t.Errorf("field %q", e.Field)
		}
	})

	t.Run("store not reachable", func(t *testing.T) {
		n := startAPI(t, nodeOpts{})
		src := demoSource(t, 10)
		spec := strings.Replace(src.yaml("pg", ""), "type: sqlite, dsn: "+src.path,
			`type: postgres, dsn: "postgres://copier:`+secret+`@127.0.0.1:1/shop?connect_timeout=5"`, 1)
		a := n.do("POST", "/api/jobs", spec)
		e := a.errBody(t, http.StatusBadRequest)
		check(t, "a check that cannot reach the source", a)
		if e.Field != "source" {
			t.Errorf("field %q: %s", e.Field, a)
		}
	})

	t.Run("a run", func(t *testing.T) {
		n := startAPI(t, nodeOpts{})
		src := demoSource(t, 100)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer hook.Close()
		url := strings.Replace(hook.URL, "http://", "http://hook:"+secret+"@", 1)
		if a := n.do("POST", "/api/jobs", src.yaml("cb", `callbacks: [{url: "`+url+`/done"}]`+"\n")); a.code != http.StatusCreated {
			t.Fatalf("submit: %s", a)
		} else {
			check(t, "submit", a)
		}
		if a := n.do("POST", "/api/jobs/cb/trigger", ""); a.code != http.StatusAccepted {
			t.Fatalf("trigger: %s", a)
		}
		var runs []engine.RunRecord
		eventually(t, 30*time.Second, "the run succeeds", func() bool {
			a := n.anon("GET", "/api/jobs/cb/runs", "")
			check(t, "runs", a)
			a.decode(t, &runs)
			return len(runs) == 1 && runs[0].State == engine.RunSucceeded
		})
		a := n.anon("GET", "/api/runs/cb/"+runs[0].ID, "")
		check(t, "run", a)
		for _, p := range []string{"/api/jobs", "/api/jobs/cb", "/api/nodes"} {
			check(t, "GET "+p, n.anon("GET", p, ""))
		}
	})
}

// gatedStore holds the first Multi that writes a run's history entry (the
// run's end, after all its partitions are done) until released, so that a
// test sees the run with its partitions as they ended.
type gatedStore struct {
	store.Store
	once, rel sync.Once
	hit       chan struct{}
	release   chan struct{}
}

func newGate() *gatedStore {
	return &gatedStore{hit: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedStore) open() { g.rel.Do(func() { close(g.release) }) }

func (g *gatedStore) Multi(ctx context.Context, ops ...store.Op) ([]store.OpResult, error) {
	for _, op := range ops {
		if op.Kind == store.OpCreate && strings.HasPrefix(op.Path, "/history/") {
			g.once.Do(func() { close(g.hit) })
			select {
			case <-g.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			break
		}
	}
	return g.Store.Multi(ctx, ops...)
}

// runBodyJSON is a run as a client decodes it.
type runBodyJSON struct {
	engine.RunRecord
	Partitions []partitionBody `json:"partitions"`
}

// A trigger queues a run; the run shows in the job's runs, with its
// partitions while it goes, and ends succeeded with every row copied.
func TestAPITriggerRun(t *testing.T) {
	gate := newGate()
	n := startAPI(t, nodeOpts{token: testToken, wrap: func(s store.Store) store.Store { gate.Store = s; return gate }})
	t.Cleanup(gate.open) // before the node stops
	src := demoSource(t, 10000)

	var callbacks []engine.CallbackPayload
	var mu sync.Mutex
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p engine.CallbackPayload
		_ = json.NewDecoder(r.Body).Decode(&p)
		if u, pw, ok := r.BasicAuth(); !ok || u != "hook" || pw != "pw" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		mu.Lock()
		callbacks = append(callbacks, p)
		mu.Unlock()
	}))
	defer hook.Close()
	cb := strings.Replace(hook.URL, "http://", "http://hook:pw@", 1)

	if a := n.do("POST", "/api/jobs", src.yaml("orders", `callbacks: [{url: "`+cb+`/done"}]`+"\n")); a.code != http.StatusCreated {
		t.Fatalf("submit: %s", a)
	}
	if a := n.anon("GET", "/api/jobs/orders/runs", ""); a.code != http.StatusOK || strings.TrimSpace(string(a.body)) != "[]" {
		t.Fatalf("runs of a job never run: %s", a)
	}

	a := n.do("POST", "/api/jobs/orders/trigger", "")
	var queued map[string]string
	a.decode(t, &queued)
	if a.code != http.StatusAccepted || queued["job"] != "orders" || !strings.HasPrefix(queued["queued"], "run-") {
		t.Fatalf("trigger: %s", a)
	}

	// The run appears in the job's runs.
	var runs []engine.RunRecord
	eventually(t, 30*time.Second, "the run shows in the job's runs", func() bool {
		a := n.anon("GET", "/api/jobs/orders/runs", "")
		a.decode(t, &runs)
		return a.code == http.StatusOK && len(runs) == 1
	})
	id := runs[0].ID
	if runs[0].Job != "orders" || runs[0].Scheme != "key-range" || runs[0].Spec.Source.Table != "orders" || runs[0].QueueEntry != queued["queued"] {
		t.Fatalf("the run as listed: %+v", runs[0])
	}

	// Every partition is done and the run is about to end.
	select {
	case <-gate.hit:
	case <-time.After(60 * time.Second):
		t.Fatal("the run does not end")
	}
	a = n.anon("GET", "/api/runs/orders/"+id, "")
	var run runBodyJSON
	a.decode(t, &run)
	if a.code != http.StatusOK || run.ID != id || run.Job != "orders" || run.State != engine.RunRunning {
		t.Fatalf("the run before its end: %s", a)
	}
	if len(run.Partitions) != 4 {
		t.Fatalf("want 4 partitions of ~2500 rows: %s", a)
	}
	var rows int64
	for i, p := range run.Partitions {
		if p.ID != fmt.Sprintf("p%04d", i) || p.State != engine.Done || p.Owner != n.node.ID() || p.Attempts != 1 || p.Lease < 1 ||
			p.EstRows <= 0 || p.Range == "" || !p.Checkpoint.Done || p.Checkpoint.Rows <= 0 || p.Error != "" {
			t.Errorf("partition %d: %+v", i, p)
		}
		rows += p.Checkpoint.Rows
	}
	if rows != src.rows {
		t.Fatalf("the partitions' checkpoints sum to %d rows, the source has %d:\n%s", rows, src.rows, a)
	}
	if !strings.HasPrefix(run.Partitions[0].Range, "[-∞, ") || !strings.HasSuffix(run.Partitions[3].Range, ", +∞)") {
		t.Errorf("ranges: first %q, last %q", run.Partitions[0].Range, run.Partitions[3].Range)
	}
	gate.open()

	eventually(t, 30*time.Second, "the run succeeds", func() bool {
		a := n.anon("GET", "/api/jobs/orders/runs", "")
		a.decode(t, &runs)
		return len(runs) == 1 && runs[0].State == engine.RunSucceeded
	})
	if runs[0].ID != id || runs[0].Rows != src.rows || runs[0].Finished.IsZero() || runs[0].Error != "" {
		t.Fatalf("the finished run: %+v", runs[0])
	}
	a = n.anon("GET", "/api/runs/orders/"+id, "")
	run = runBodyJSON{}
	a.decode(t, &run)
	if a.code != http.StatusOK || run.State != engine.RunSucceeded || run.Rows != src.rows || run.Partitions == nil {
		t.Fatalf("the finished run: %s", a)
	}
	// Without Redis the store kept the finished run's partitions.
	rows = 0
	for _, p := range run.Partitions {
		if p.State != engine.Done || p.Owner != n.node.ID() || p.Attempts != 1 {
			t.Errorf("a partition of the finished run: %+v", p)
		}
		rows += p.Checkpoint.Rows
	}
	if len(run.Partitions) != 4 || rows != src.rows {
		t.Fatalf("the finished run shows %d partitions of %d rows, want 4 of %d:\n%s", len(run.Partitions), rows, src.rows, a)
	}

	// The sink holds the source.
	want, err := engine.TableChecksum(context.Background(), "sqlite", connectors.SourceConfig{DSN: src.path, Table: "orders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.TableChecksum(context.Background(), "parquet", connectors.SourceConfig{DSN: src.sinkDir("orders")}, nil)
	if err != nil || got != want {
		t.Fatalf("sink %v (%v), source %v", got, err, want)
	}
	eventually(t, 10*time.Second, "the callback is called", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(callbacks) == 1
	})
	if p := callbacks[0]; p.Job != "orders" || p.Run != id || p.Status != engine.RunSucceeded || p.Rows != src.rows {
		t.Fatalf("callback: %+v", p)
	}

	// The list of jobs and the job show the run as the newest, with the
	// schedule (none: a job run by hand).
	var list []jobBody
	n.anon("GET", "/api/jobs", "").decode(t, &list)
	if len(list) != 1 || list[0].LastRun == nil || list[0].LastRun.ID != id || list[0].LastRun.State != engine.RunSucceeded ||
		list[0].LastRun.Rows != src.rows || list[0].Schedule == nil || list[0].Schedule.Paused || len(list[0].Schedule.NextFires) != 0 {
		t.Fatalf("the list of jobs after the run: %+v", list)
	}
	var one jobBody
	n.anon("GET", "/api/jobs/orders", "").decode(t, &one)
	if one.LastRun == nil || one.LastRun.ID != id {
		t.Fatalf("the job after the run: %+v", one)
	}
	if a := n.anon("GET", "/api/jobs/orders/runs?limit=1", ""); a.code != http.StatusOK || !strings.Contains(string(a.body), id) {
		t.Fatalf("runs?limit=1: %s", a)
	}
	for _, bad := range []string{"0", "-3", "many"} {
		e := n.anon("GET", "/api/jobs/orders/runs?limit="+bad, "").errBody(t, http.StatusBadRequest)
		if !strings.Contains(e.Error, `limit "`+bad+`"`) {
			t.Errorf("runs?limit=%s: %+v", bad, e)
		}
	}

	// Runs that are not there.
	for _, p := range []string{"/api/runs/orders/20000101T000000.000000Z-000000", "/api/runs/nope/" + id} {
		e := n.anon("GET", p, "").errBody(t, http.StatusNotFound)
		if !strings.Contains(e.Error, "not found") {
			t.Errorf("GET %s: %+v", p, e)
		}
	}
}

// The nodes answer lists the node, leading, with what it publishes.
func TestAPINodes(t *testing.T) {
	n := startAPI(t, nodeOpts{token: testToken})
	var body nodesBody
	eventually(t, 10*time.Second, "the node leads and publishes its resources", func() bool {
		a := n.anon("GET", "/api/nodes", "")
		if a.code != http.StatusOK {
			t.Fatalf("nodes: %s", a)
		}
		body = nodesBody{}
		a.decode(t, &body)
		return body.Leader != "" && len(body.Nodes) == 1 && body.Nodes[0].Resources != nil
	})
	id := n.node.ID()
	nb := body.Nodes[0]
	if body.Leader != id || body.Self != id || nb.ID != id || !nb.Leader || body.Time.IsZero() {
		t.Fatalf("nodes: %+v", body)
	}
	if nb.Info.Addr != "127.0.0.1:0" || nb.Info.Slots != 2 || nb.Info.PID == 0 || nb.Info.Started.IsZero() {
		t.Fatalf("node info: %+v", nb.Info)
	}
	r := nb.Resources
	if r.Slots != 2 || r.Free != 2 || len(r.Running) != 0 || r.Heap <= 0 || r.Updated.IsZero() || r.Draining {
		t.Fatalf("resources: %+v", r)
	}
}

// Delete removes the job: 204, then it is gone everywhere, and its name
// free again.
func TestAPIDelete(t *testing.T) {
	n := startAPI(t, nodeOpts{token: testToken})
	src := demoSource(t, 100)
	for _, name := range []string{"keep", "drop"} {
		if a := n.do("POST", "/api/jobs", src.yaml(name, "")); a.code != http.StatusCreated {
			t.Fatalf("submit: %s", a)
		}
	}
	a := n.do("DELETE", "/api/jobs/drop", "")
	if a.code != http.StatusNoContent || len(a.body) != 0 {
		t.Fatalf("delete: %s", a)
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/jobs/drop"}, {"DELETE", "/api/jobs/drop"}, {"POST", "/api/jobs/drop/trigger"}, {"GET", "/api/jobs/drop/runs"},
	} {
		n.do(r.method, r.path, "").errBody(t, http.StatusNotFound)
	}
	var list []jobBody
	n.anon("GET", "/api/jobs", "").decode(t, &list)
	if len(list) != 1 || list[0].Name != "keep" {
		t.Fatalf("list after delete: %+v", list)
	}
	if a := n.do("POST", "/api/jobs", src.yaml("drop", "")); a.code != http.StatusCreated {
		t.Fatalf("submit a deleted job's name again: %s", a)
	}
}

// The cluster's config is read by anyone, changed with the token, refused
// by field when bad, and its job defaults reach jobs submitted after it.
func TestAPIConfig(t *testing.T) {
	n := startAPI(t, nodeOpts{token: "s3cret"})
	src := demoSource(t, 100)
	var cfg coordinator.ClusterConfig
	a := n.anon("GET", "/api/config", "")
	a.decode(t, &cfg)
	if cfg != (coordinator.ClusterConfig{}) || a.header.Get("ETag") != `"0"` {
		t.Fatalf("config of a new cluster: %+v, ETag %s", cfg, a.header.Get("ETag"))
	}
	if a := n.anon("PUT", "/api/config", `{"batch_rows": 123}`); a.code != http.StatusUnauthorized {
		t.Fatalf("PUT without the token: %s", a)
	}
	if e := n.do("PUT", "/api/config", `{"slots": -1}`).errBody(t, http.StatusBadRequest); e.Field != "slots" || !strings.HasPrefix(e.Error, "cluster config: slots: must be between 1 and 1024") {
		t.Fatalf("a bad slots value: %+v", e)
	}
	if a := n.do("PUT", "/api/config", `{"slot": 3}`); a.code != http.StatusBadRequest || !strings.Contains(string(a.body), `unknown field \"slot\"`) {
		t.Fatalf("an unknown field: %s", a)
	}
	if a := n.send("PUT", "/api/config", `{"batch_rows": 123, "log_level": "debug"}`, "s3cret", "If-Match", `"0"`); a.code != http.StatusOK || a.header.Get("ETag") != `"1"` {
		t.Fatalf("PUT against revision 0: %s, ETag %s", a, a.header.Get("ETag"))
	}
	// A change made against the revision before is refused: someone
	// changed the config since it was read.
	e := n.send("PUT", "/api/config", `{"batch_rows": 5}`, "s3cret", "If-Match", `"0"`).errBody(t, http.StatusPreconditionFailed)
	if e.Error != "the cluster config changed since it was read: revision 0, now 1; read it again" {
		t.Fatalf("PUT against a stale revision: %+v", e)
	}
	if e := n.send("PUT", "/api/config", `{"batch_rows": 5}`, "s3cret", "If-Match", "yesterday").errBody(t, http.StatusBadRequest); !strings.Contains(e.Error, "If-Match yesterday: want the ETag") {
		t.Fatalf("a bad If-Match: %+v", e)
	}
	n.anon("GET", "/api/config", "").decode(t, &cfg)
	if cfg.BatchRows != 123 || cfg.LogLevel != "debug" {
		t.Fatalf("config read back: %+v", cfg)
	}
	if a := n.do("POST", "/api/jobs", src.yaml("with-defaults", "")); a.code != http.StatusCreated {
		t.Fatalf("submit: %s", a)
	}
	var got jobBody
	n.anon("GET", "/api/jobs/with-defaults", "").decode(t, &got)
	if got.Spec.BatchRows != 123 {
		t.Fatalf("a job submitted without batch_rows got %d, want the cluster's 123", got.Spec.BatchRows)
	}
}
