package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/history"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
	"github.com/datashift/datashift/web"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "also write the run page's screenshot to docs/run-page.png (the README shows it)")

// chromium finds Debian's chromium (scripts/services.sh chromium installs
// it): the test is skipped without it, or fails when services are required.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if testenv.Required() {
		t.Fatal("chromium is not installed (run scripts/services.sh chromium)")
	}
	t.Skip("chromium is not installed (run scripts/services.sh chromium)")
	return ""
}

// redisHistory is a Redis history of the test's own when Redis answers (or
// must), else nil: the node's store keeps the last runs then.
func redisHistory(t *testing.T) coordinator.History {
	t.Helper()
	if c, err := net.DialTimeout("tcp", testenv.RedisAddr(), time.Second); err == nil {
		c.Close()
	} else if !testenv.Required() {
		t.Logf("no Redis at %s: the node keeps its runs in its store", testenv.RedisAddr())
		return nil
	}
	addr, prefix := testenv.RedisPrefix(t)
	h, err := history.OpenRedis(context.Background(), "redis://"+addr+"/0", prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() }) // after the node stops: cleanups run last first
	return h
}

// browser is a headless Chromium tab on the node's UI, with what the page
// wrote to its console.
type browser struct {
	t   *testing.T
	ctx context.Context
	url string

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func openBrowser(t *testing.T, url string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // tests run as root on CI
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("lang", "en-US"),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, url: url}
	messages := chromedp.Console(ctx) // starts the browser; no message is lost
	// Bars jump to their width rather than grow: a screenshot shows
	// where they are.
	reduce := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}}}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, reduce); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs browser actions, failing the test when one fails or takes over
// 20 s (a selector that never shows waits that long).
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) open(route string) {
	b.t.Helper()
	b.do("open "+route, chromedp.Navigate(b.url+"/"+route))
}

// text is what a person sees of the first element sel selects ("" if
// none), whitespace folded.
func (b *browser) text(sel string) string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => { const e = document.querySelector(`+strconv.Quote(sel)+`); return e ? e.innerText : ""; })()`))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.Join(strings.Fields(got), " ")
}

// texts is the text of every element sel selects.
func (b *browser) texts(sel string) []string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(`+strconv.Quote(sel)+`), e => e.innerText.trim())`))
	if err != nil {
		b.t.Fatalf("texts of %s: %v", sel, err)
	}
	return got
}

// waitText waits until the text of sel holds every one of want.
func (b *browser) waitText(sel string, want ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := b.text(sel)
		missing := ""
		for _, w := range want {
			if !strings.Contains(got, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			if page := b.text("main"); regexp.MustCompile(`\b(null|undefined|NaN|Infinity)\b|\[object `).MatchString(page) {
				b.t.Fatalf("the page shows a value the script did not format: %q", page)
			}
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("after 20s %s does not say %q; it says %q", sel, missing, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// problems are the page's script errors and the requests the browser
// refused or saw fail, but for the 401 that asks for the token and the
// statuses expected.
func (b *browser) problems(expected ...int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
			continue
		}
		if m.Source == "network" && slices.ContainsFunc(append(expected, http.StatusUnauthorized), func(code int) bool {
			return strings.Contains(m.Text, fmt.Sprintf("status of %d", code))
		}) {
			continue
		}
		out = append(out, m.String())
	}
	return out
}

// A person opens the UI of a running node: the cluster page shows the
// node leading; the jobs page lists the job with its schedule; Pause asks
// for the node's token, and once it is given the job says paused; Resume
// undoes it; on the job page Trigger starts a run, the page moves to it,
// and the run page shows every partition done, their rows adding up to the
// source's. The run page's screenshot is kept.
func TestWebUIEndToEnd(t *testing.T) {
	chromium(t)
	n := startAPI(t, nodeOpts{token: testToken, ui: web.Handler(), history: redisHistory(t)})
	src := demoSource(t, 30000)
	// Six partitions, rate-limited and committing often, so that the run
	// lasts a few seconds and its bars move.
	spec := `name: orders
source: {type: sqlite, dsn: ` + src.path + `, table: orders, key: [id]}
sink: {type: parquet, dsn: ` + src.sinkDir("orders") + `, mode: truncate}
partitions: {target_rows: 5000}
schedule: {cron: "0 3 * * *"}
rate_limit: {rows_per_second: 6000}
batch_rows: 500
commit_rows: 500
`
	if a := n.do("POST", "/api/jobs", spec); a.code != http.StatusCreated {
		t.Fatalf("submit orders: %s", a)
	}
	// A downstream job, paused so that it does not run after orders.
	if a := n.do("POST", "/api/jobs", src.yaml("orders_copy", "schedule: {after: [orders]}\n")); a.code != http.StatusCreated {
		t.Fatalf("submit orders_copy: %s", a)
	}
	if a := n.do("POST", "/api/jobs/orders_copy/pause", ""); a.code != http.StatusOK {
		t.Fatalf("pause orders_copy: %s", a)
	}
	id := n.node.ID()
	b := openBrowser(t, n.srv.URL)

	// The cluster page.
	b.open("#/cluster")
	row := `tr[data-node="` + id + `"]`
	b.waitText(row, id, "leader", "this node")
	// The labels are set in capitals (CSS), as a person sees them.
	if facts := b.waitText("main .facts", "LEADER"); !strings.Contains(facts, "LEADER "+id) || !strings.Contains(facts, "THIS NODE "+id) {
		t.Errorf("the cluster's facts: %q", facts)
	}
	writeScreenshot(t, "cluster-page.png", screenshot(t, b))

	// The jobs page, and Pause through the token form.
	b.do("open the jobs", chromedp.Click(chromedp.CSS(`nav a[data-nav="jobs"]`)))
	job := `tr[data-job="orders"]`
	got := b.waitText(job, "orders", "0 3 * * *", "never run", "active")
	if strings.Contains(got, "paused") {
		t.Fatalf("the job shows paused before Pause: %q", got)
	}
	if got := b.text(`tr[data-job="orders_copy"]`); !strings.Contains(got, "after orders") || !strings.Contains(got, "paused") {
		t.Errorf("the downstream job in the list: %q", got)
	}
	b.do("pause", chromedp.Click(chromedp.CSS(job+` button[data-action="pause"]`)), chromedp.WaitVisible(chromedp.CSS("#token-form")))
	if form := b.text("#token-form"); !strings.Contains(form, "needs a token") {
		t.Errorf("the token form says %q", form)
	}
	b.do("give the token",
		chromedp.SendKeys(chromedp.CSS("#token-input"), testToken),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		chromedp.WaitNotVisible(chromedp.CSS("#token-form")))
	b.waitText(job, "paused", "Resume")
	var paused jobBody
	n.anon("GET", "/api/jobs/orders", "").decode(t, &paused)
	if paused.Schedule == nil || !paused.Schedule.Paused {
		t.Fatalf("the page says paused, the API: %+v", paused.Schedule)
	}
	b.waitText("#notice", "Paused orders")
	b.do("resume", chromedp.Click(chromedp.CSS(job+` button[data-action="resume"]`)))
	b.waitText(job, "active", "Pause")
	writeScreenshot(t, "jobs-page.png", screenshot(t, b))

	// The job page, and Trigger (the token is kept for the tab).
	b.do("open the job", chromedp.Click(chromedp.CSS(job+` a[href="#/jobs/orders"]`)))
	b.waitText("main h1", "orders")
	b.waitText("main .cols", "0 3 * * *", "Downstream", "orders_copy")
	if runs := b.text("main .table-wrap"); !strings.Contains(runs, "No runs yet") {
		t.Errorf("the runs of a job never run: %q", runs)
	}
	b.do("trigger", chromedp.Click(chromedp.CSS(`main .headline button[data-action="trigger"]`)))
	runRoute := regexp.MustCompile(`#/runs/orders/([^/]+)$`)
	var run string
	eventually(t, 30*time.Second, "the page moves to the run it started", func() bool {
		m := runRoute.FindStringSubmatch(b.location())
		if m != nil {
			run = m[1]
		}
		return m != nil
	})

	// The run page while it goes: the picture is taken when some
	// partitions are done and some copying, or else at the end.
	var shot []byte
	for shot == nil && !strings.Contains(b.waitText("main .headline", "Run", run), "succeeded") {
		var done, going int
		for _, p := range b.texts("tr[data-partition]") {
			if strings.Contains(p, "done") {
				done++
			}
			if strings.Contains(p, "running") && strings.Contains(p, "rows/s") {
				going++
			}
		}
		if done >= 2 && going >= 1 {
			shot = screenshot(t, b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The run ends succeeded, every partition done on this node.
	b.waitText("main .headline", "Run", run, "succeeded")
	var parts []string
	eventually(t, 10*time.Second, "the run page shows the partitions done", func() bool {
		parts = b.texts("tr[data-partition]")
		for _, p := range parts {
			if !strings.Contains(p, "done") {
				return false
			}
		}
		return len(parts) > 1
	})
	var rows int64
	for _, cell := range b.texts("tr[data-partition] td.rows") {
		v, err := strconv.ParseInt(strings.ReplaceAll(cell, ",", ""), 10, 64)
		if err != nil {
			t.Fatalf("a partition's rows read %q: %v", cell, err)
		}
		rows += v
	}
	if rows != src.rows {
		t.Errorf("the partitions' rows add up to %d, the source has %d:\n%s", rows, src.rows, strings.Join(parts, "\n"))
	}
	if facts := b.text("main .facts"); !strings.Contains(facts, "ROWS 30,000") || !strings.Contains(facts, strconv.Itoa(len(parts))+" of "+strconv.Itoa(len(parts))+" done") {
		t.Errorf("the run's facts: %q", facts)
	}
	for _, p := range parts {
		if !strings.Contains(p, id) {
			t.Errorf("a partition without its worker %s: %q", id, p)
		}
	}
	var runs []engine.RunRecord
	n.anon("GET", "/api/jobs/orders/runs", "").decode(t, &runs)
	if len(runs) != 1 || runs[0].ID != run || runs[0].State != engine.RunSucceeded || runs[0].Rows != src.rows {
		t.Fatalf("the page shows run %s succeeded; the API: %+v", run, runs)
	}
	if shot == nil {
		shot = screenshot(t, b)
	}
	writeScreenshot(t, "run-page.png", shot)

	// The job page lists the run.
	b.do("back to the job", chromedp.Click(chromedp.CSS(`main .crumbs a[href="#/jobs/orders"]`)))
	b.waitText(`tr[data-run="`+run+`"]`, "succeeded", "30,000", "manual")
	writeScreenshot(t, "job-page.png", screenshot(t, b))

	if p := b.problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

func screenshot(t *testing.T, b *browser) []byte {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	return png
}

// writeScreenshot keeps a page's picture under .build/screenshots every
// run, and the run page's under docs/ too (the README's) with
// -update-screenshots.
func writeScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	root := filepath.Join("..", "..")
	paths := []string{filepath.Join(root, ".build", "screenshots", name)}
	if *updateScreenshots && name == "run-page.png" {
		paths = append(paths, filepath.Join(root, "docs", name))
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d KB)", p, len(png)/1024)
	}
}

// The UI is served beside the API without taking its paths: / is the
// page, an unknown API path is still a JSON 404, and a write to / is
// refused.
func TestWebUIBesideTheAPI(t *testing.T) {
	n := startAPI(t, nodeOpts{ui: web.Handler()})
	page := n.anon("GET", "/", "")
	if page.code != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(page.header.Get("Content-Security-Policy"), "default-src 'self'") || !strings.Contains(string(page.body), "app.js") {
		t.Fatalf("GET /: %s %v", page, page.header)
	}
	if e := n.anon("GET", "/api/nope", "").errBody(t, http.StatusNotFound); !strings.Contains(e.Error, "no such API route") {
		t.Errorf("GET /api/nope beside the UI: %+v", e)
	}
	var jobs []jobBody
	n.anon("GET", "/api/jobs", "").decode(t, &jobs)
	if a := n.anon("POST", "/", "x"); a.code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %s", a)
	}
	if a := n.anon("GET", "/jobs", ""); a.code != http.StatusNotFound {
		t.Errorf("GET /jobs (the app's routes are in the fragment): %s", a)
	}
}

// A run that fails shows why, on the run page and in the list of jobs.
func TestWebUIShowsAFailedRun(t *testing.T) {
	chromium(t)
	n := startAPI(t, nodeOpts{ui: web.Handler()})
	src := demoSource(t, 3000)
	if a := n.do("POST", "/api/jobs", src.yaml("bad", "")); a.code != http.StatusCreated {
		t.Fatalf("submit: %s", a)
	}
	// The sink's folder turns into a file after the job was checked.
	if err := os.WriteFile(src.sinkDir("bad"), []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	if a := n.do("POST", "/api/jobs/bad/trigger", ""); a.code != http.StatusAccepted {
		t.Fatalf("trigger: %s", a)
	}
	var runs []engine.RunRecord
	eventually(t, 30*time.Second, "the run fails", func() bool {
		n.anon("GET", "/api/jobs/bad/runs", "").decode(t, &runs)
		return len(runs) == 1 && runs[0].State == engine.RunFailed
	})
	b := openBrowser(t, n.srv.URL)
	b.open("#/jobs")
	b.waitText(`tr[data-job="bad"]`, "failed")
	b.do("open the run", chromedp.Click(chromedp.CSS(`tr[data-job="bad"] a[href^="#/runs/bad/"]`)))
	b.waitText("main .headline", runs[0].ID, "failed")
	if got := b.waitText("main .run-error", "is not a directory"); !strings.Contains(got, "prepare sink") {
		t.Errorf("the run's error reads %q", got)
	}
	writeScreenshot(t, "failed-run-page.png", screenshot(t, b))
	if p := b.problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// A job is defined on the New job page: a spec the node refuses shows its
// reason, naming the field; one it takes opens the job's page; a name that
// is taken is replaced once asked. The node's token is asked for on the
// first change.
func TestWebUINewJob(t *testing.T) {
	chromium(t)
	n := startAPI(t, nodeOpts{token: testToken, ui: web.Handler()})
	src := demoSource(t, 100)
	b := openBrowser(t, n.srv.URL)
	b.open("#/jobs")
	b.do("open New job", chromedp.Click(chromedp.CSS(`main a[data-action="new"]`)))
	b.waitText("main h1", "New job")

	bad := strings.Replace(src.yaml("fresh", ""), "mode: truncate", "mode: merge", 1)
	b.do("submit a bad spec",
		chromedp.SetValue(chromedp.CSS("#spec"), bad),
		chromedp.Click(chromedp.CSS("#spec-submit")),
		chromedp.WaitVisible(chromedp.CSS("#token-form")),
		chromedp.SendKeys(chromedp.CSS("#token-input"), testToken),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	b.waitText("#spec-error", `job "fresh": sink.mode: must be append, truncate or upsert (got "merge")`)
	if a := n.anon("GET", "/api/jobs/fresh", ""); a.code != http.StatusNotFound {
		t.Fatalf("a refused spec was filed: %s", a)
	}
	writeScreenshot(t, "new-job-page.png", screenshot(t, b))

	b.do("submit a good spec", chromedp.SetValue(chromedp.CSS("#spec"), src.yaml("fresh", "")), chromedp.Click(chromedp.CSS("#spec-submit")))
	eventually(t, 20*time.Second, "the page moves to the new job", func() bool { return strings.HasSuffix(b.location(), "#/jobs/fresh") })
	b.waitText("main h1", "fresh")
	var filed jobBody
	n.anon("GET", "/api/jobs/fresh", "").decode(t, &filed)
	if filed.Spec == nil || filed.Spec.BatchRows == 7 {
		t.Fatalf("the filed job: %+v", filed)
	}

	// The same name again: refused as taken, then replaced on request.
	b.open("#/new")
	b.do("submit a taken name", chromedp.SetValue(chromedp.CSS("#spec"), src.yaml("fresh", "batch_rows: 7\n")), chromedp.Click(chromedp.CSS("#spec-submit")))
	b.waitText("#spec-error", `job "fresh"`, "exists")
	b.do("replace it", chromedp.WaitVisible(chromedp.CSS("#spec-replace")), chromedp.Click(chromedp.CSS("#spec-replace")))
	eventually(t, 20*time.Second, "the page moves to the replaced job", func() bool { return strings.HasSuffix(b.location(), "#/jobs/fresh") })
	eventually(t, 10*time.Second, "the job is replaced", func() bool {
		var now jobBody
		n.anon("GET", "/api/jobs/fresh", "").decode(t, &now)
		return now.Spec != nil && now.Spec.BatchRows == 7
	})
	// The refusals are answers the page shows, not its errors.
	if p := b.problems(http.StatusBadRequest, http.StatusConflict); len(p) > 0 {
		t.Errorf("the browser reported: %v", p)
	}
}
