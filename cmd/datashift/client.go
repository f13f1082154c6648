package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// defaultServer is the API `datashift node` listens on by default.
const defaultServer = "http://127.0.0.1:8700"

// apiClient talks to one node's JSON API (see api.go); any node answers
// for the whole cluster.
type apiClient struct {
	base  string // http://host:port, no trailing slash
	token string // bearer token for writes; "" for none
	http  *http.Client
}

func newAPIClient(server, token string) (*apiClient, error) {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("--server %q: want the node's API address, such as %s", server, defaultServer)
	}
	return &apiClient{base: strings.TrimRight(server, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// serverError is an error answer of the API: its HTTP status says whose
// mistake it is (see exitCode), and its text is the server's, in the
// user's words, shown as it is.
type serverError struct {
	Status int
	Msg    string
	Field  string
}

func (e *serverError) Error() string { return e.Msg }

// unreachableError is a node that did not answer at all.
type unreachableError struct {
	server string
	err    error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the datashift node at %s: %s (start one with datashift node, or set --server / DATASHIFT_SERVER)",
		e.server, rootCause(e.err))
}

func (e *unreachableError) Unwrap() error { return e.err }

// rootCause is the innermost error's text: "connection refused" rather
// than `Get "http://…/api/jobs": dial tcp …: connect: connection refused`.
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// do sends one request and returns the answer's body when it is a 2xx,
// else a serverError (or unreachableError).
func (c *apiClient) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	data, _, err := c.request(ctx, method, path, body, nil)
	return data, err
}

// request is do with more request headers, answering the answer's
// headers too.
func (c *apiClient) request(ctx context.Context, method, path string, body []byte, header http.Header) ([]byte, http.Header, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, &unreachableError{server: c.base, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, &unreachableError{server: c.base, err: err}
	}
	if resp.StatusCode/100 == 2 {
		return data, resp.Header, nil
	}
	var e errorBody
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		// Not our API's answer: a proxy, or something else on the port.
		// Its status is not the node's word on the request (a 404 is
		// not "no such job"): exit 1.
		return nil, nil, &cliError{code: 1,
			msg: fmt.Sprintf("%s %s answered %s, not as a datashift node does (is --server right?)", method, c.base+path, resp.Status)}
	}
	return nil, nil, &serverError{Status: resp.StatusCode, Msg: e.Error, Field: e.Field}
}

// get decodes a GET's answer into v and returns it as it came too, for -o
// json.
func (c *apiClient) get(ctx context.Context, path string, v any) ([]byte, error) {
	return c.send(ctx, http.MethodGet, path, nil, v)
}

// send is do with the answer decoded into v (when v is not nil).
func (c *apiClient) send(ctx context.Context, method, path string, body []byte, v any) ([]byte, error) {
	data, err := c.do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			return nil, fmt.Errorf("%s %s: the answer is not what a datashift node sends: %w", method, c.base+path, err)
		}
	}
	return data, nil
}

// pathEscape escapes a job or run name for a path segment.
func pathEscape(s string) string { return url.PathEscape(s) }
