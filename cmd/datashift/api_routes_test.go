package main

import (
	"net/http"
	"strings"
	"testing"
)

// Every route that changes the cluster needs the token, and a refused
// write changes nothing; every route that reads a body caps it.
func TestAPIEveryWriteNeedsTheTokenAndCapsItsBody(t *testing.T) {
	n := startAPI(t, nodeOpts{token: testToken})
	src := demoSource(t, 100)
	if a := n.do("POST", "/api/jobs", src.yaml("w", "schedule: {cron: \"0 3 * * *\"}\n")); a.code != http.StatusCreated {
		t.Fatalf("submit: %s", a)
	}
	before := n.anon("GET", "/api/jobs/w", "").body
	config := n.anon("GET", "/api/config", "").body
	big := strings.Repeat("x", maxBody+1)
	for _, w := range []struct {
		method, path, body string
		takesBody          bool
	}{
		{"POST", "/api/jobs", src.yaml("w2", ""), true},
		{"PUT", "/api/jobs/w", src.yaml("w", "batch_rows: 7\n"), true},
		{"DELETE", "/api/jobs/w", "", false},
		{"POST", "/api/jobs/w/trigger", "", false},
		{"POST", "/api/jobs/w/pause", "", false},
		{"POST", "/api/jobs/w/resume", "", false},
		{"PUT", "/api/config", `{"batch_rows": 7}`, true},
	} {
		e := n.anon(w.method, w.path, w.body).errBody(t, http.StatusUnauthorized)
		if !strings.Contains(e.Error, "bearer token") {
			t.Errorf("%s %s without the token: %+v", w.method, w.path, e)
		}
		n.send(w.method, w.path, w.body, "wrong").errBody(t, http.StatusUnauthorized)
		if w.takesBody {
			e := n.do(w.method, w.path, big).errBody(t, http.StatusRequestEntityTooLarge)
			if !strings.Contains(e.Error, "over 1048576 bytes") {
				t.Errorf("%s %s with %d bytes: %+v", w.method, w.path, len(big), e)
			}
		}
	}
	if a := n.anon("GET", "/api/jobs/w", ""); string(a.body) != string(before) {
		t.Errorf("refused writes changed the job:\nbefore %s\nafter  %s", before, a.body)
	}
	if a := n.anon("GET", "/api/jobs/w2", ""); a.code != http.StatusNotFound {
		t.Errorf("a refused submit filed its job: %s", a)
	}
	if a := n.anon("GET", "/api/config", ""); string(a.body) != string(config) {
		t.Errorf("refused writes changed the config:\nbefore %s\nafter  %s", config, a.body)
	}
	if a := n.anon("GET", "/api/jobs/w/runs", ""); strings.TrimSpace(string(a.body)) != "[]" {
		t.Errorf("a refused trigger started a run: %s", a)
	}
}

// Bodies that are not what the route reads are the user's mistake (400),
// and so are paths and methods the API does not have, answered in JSON.
func TestAPIMalformedRequests(t *testing.T) {
	n := startAPI(t, nodeOpts{})
	for _, c := range []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"PUT", "/api/config", `{"batch_rows": 7`, http.StatusBadRequest, "config: unexpected EOF"},
		{"PUT", "/api/config", `{"batch_rows": "seven"}`, http.StatusBadRequest, "config: json: cannot unmarshal string"},
		{"PUT", "/api/config", `batch_rows: 7`, http.StatusBadRequest, "config: invalid character"},
		{"POST", "/api/jobs", "name: [", http.StatusBadRequest, "job spec: "},
		{"GET", "/api/nope", "", http.StatusNotFound, "no such API route: GET /api/nope"},
		{"GET", "/api/jobs/a/b/c", "", http.StatusNotFound, "no such API route: GET /api/jobs/a/b/c"},
		{"PATCH", "/api/jobs/a", "", http.StatusMethodNotAllowed, "PATCH is not allowed on /api/jobs/a (allowed: DELETE, GET, HEAD, PUT)"},
		{"DELETE", "/api/nodes", "", http.StatusMethodNotAllowed, "DELETE is not allowed on /api/nodes (allowed: GET, HEAD)"},
	} {
		e := n.do(c.method, c.path, c.body).errBody(t, c.code)
		if !strings.Contains(e.Error, c.says) {
			t.Errorf("%s %s %q: %q does not say %q", c.method, c.path, c.body, e.Error, c.says)
		}
	}
}

// The token and a Redis URL (which may hold a password) come from the
// environment without --help showing them.
func TestNodeHelpShowsNoSecrets(t *testing.T) {
	t.Setenv("DATASHIFT_TOKEN", "s3cret-token")
	t.Setenv("DATASHIFT_REDIS", "redis://:hunter2@127.0.0.1:6379/0")
	out, err := datashift(t, "node", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret-token", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("datashift node --help shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "default $DATASHIFT_TOKEN") {
		t.Errorf("--help does not say where the token comes from:\n%s", out)
	}
}
