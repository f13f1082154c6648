package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, srv *httptest.Server, method, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// Each file is served with the type the browser needs to use it under
// nosniff, and every answer carries the security headers.
func TestFilesAndTheirTypes(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, c := range []struct{ path, contentType, has string }{
		{"/", "text/html; charset=utf-8", `<script src="/app.js" defer></script>`},
		{"/index.html", "text/html; charset=utf-8", `<main id="main"`},
		{"/app.js", "text/javascript; charset=utf-8", "textContent"},
		{"/app.css", "text/css; charset=utf-8", ".bar"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		resp, body := get(t, srv, "GET", c.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", c.path, resp.StatusCode, body)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != c.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.contentType)
		}
		if !strings.Contains(body, c.has) {
			t.Errorf("GET %s does not hold %q", c.path, c.has)
		}
		checkSecurityHeaders(t, c.path, resp.Header)
	}
}

func checkSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("%s: Content-Security-Policy %q allows something unsafe", what, csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, got)
	}
}

// The app's routes are in the fragment, which never reaches the server:
// any other path is a plain 404, and only reads are allowed.
func TestUnknownPathsAndMethods(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, p := range []string{"/jobs", "/static/app.js", "/app.js/", "/../web.go", "/web.go"} {
		resp, body := get(t, srv, "GET", p)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "the UI is at /") {
			t.Errorf("GET %s: %d %q, want 404 pointing at /", p, resp.StatusCode, body)
		}
		checkSecurityHeaders(t, "GET "+p, resp.Header)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		resp, _ := get(t, srv, m, "/")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: %d, Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if resp, body := get(t, srv, "HEAD", "/app.js"); resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("HEAD /app.js: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// A browser that has a file revalidates it and is told it is unchanged.
func TestUnchangedFilesAre304(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	resp, _ := get(t, srv, "GET", "/app.js")
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	if again, body := get(t, srv, "GET", "/app.js", "If-None-Match", etag); again.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("GET /app.js If-None-Match %s: %d", etag, again.StatusCode)
	}
	if other, _ := get(t, srv, "GET", "/app.css", "If-None-Match", etag); other.StatusCode != http.StatusOK {
		t.Errorf("another file's ETag matched /app.css: %d", other.StatusCode)
	}
}

// The page keeps to its policy: no inline script, style or event handler
// attributes, nothing loaded from elsewhere, and the script never parses
// strings as HTML.
func TestThePageKeepsToItsPolicy(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	_, page := get(t, srv, "GET", "/")
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script>`), regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`(src|href)="(https?:)?//`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html has %q", m)
		}
	}
	_, script := get(t, srv, "GET", "/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(script, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
