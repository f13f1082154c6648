// Package web is the user interface every node serves beside its JSON API:
// one page, its script, its style sheet and its icon, embedded in the binary
// so that a node needs no build step, no files beside it and no network to
// show it. The page is a single-page app with hash routes (#/cluster,
// #/jobs, #/jobs/NAME, #/runs/JOB/RUN) that reads and writes through the
// JSON API with fetch; nothing is rendered on the server.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// contentTypes are the types of the files the UI has. They are set here
// rather than looked up in the host's MIME tables, which differ between
// machines, and a script served as anything but JavaScript is refused by
// the browser under nosniff.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// securityHeaders go on every answer. The page loads nothing but its own
// files and talks to nothing but its own node: no inline script or style
// (the script builds every element and sets only text), no frames, no
// forms posted elsewhere.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	"Referrer-Policy":        "no-referrer",
}

// file is one embedded file, ready to serve.
type file struct {
	name, contentType, etag string
	body                    []byte
}

// Handler serves the UI: the page at /, its files by name. Every other
// path is 404 (the app's routes live in the URL's fragment, which never
// reaches the server), every method but GET and HEAD 405.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			panic("web: no content type for " + p) // a file added without its type
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "static")
		files[name] = file{name: name, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, body: body}
		return nil
	})
	if err != nil {
		panic("web: reading the embedded files: " + err.Error())
	}
	files["/"] = files["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range securityHeaders {
			h.Set(k, v)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, r.Method+" is not allowed here (allowed: GET, HEAD)", http.StatusMethodNotAllowed)
			return
		}
		f, ok := files[r.URL.Path]
		if !ok {
			http.Error(w, "no such page: "+r.URL.Path+" (the UI is at /)", http.StatusNotFound)
			return
		}
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		// Revalidated every time: the files change with the binary, and
		// an unchanged file costs a 304.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	})
}
