package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/datashift/datashift/engine"
)

// GET /metrics answers in Prometheus's text format, without a token even
// on a node that has one, and after a run counts the source's rows under
// the job's name; the node leads, so it reports the cluster's gauges.
func TestAPIServesMetrics(t *testing.T) {
	n := startAPI(t, nodeOpts{token: "s3cret", metrics: true})
	src := demoSource(t, 4000)
	if a := n.do("POST", "/api/jobs", src.yaml("counted", "")); a.code != http.StatusCreated {
		t.Fatalf("submit: %s", a)
	}
	if a := n.do("POST", "/api/jobs/counted/trigger", ""); a.code != http.StatusAccepted {
		t.Fatalf("trigger: %s", a)
	}
	var runs []engine.RunRecord
	eventually(t, 30*time.Second, "the run ends", func() bool {
		a := n.anon("GET", "/api/jobs/counted/runs", "")
		a.decode(t, &runs)
		return len(runs) == 1 && runs[0].State != engine.RunRunning
	})
	if runs[0].State != engine.RunSucceeded || runs[0].Rows != src.rows {
		t.Fatalf("run %s: %d rows of %d, %s", runs[0].State, runs[0].Rows, src.rows, runs[0].Error)
	}

	// The leader observes the run's end just after writing it: wait for it.
	var a answer
	eventually(t, 10*time.Second, "the run's duration is observed", func() bool {
		a = n.anon("GET", "/metrics", "")
		return strings.Contains(string(a.body), `datashift_run_duration_seconds_count{job="counted",state="succeeded"} 1`+"\n")
	})
	if a.code != http.StatusOK {
		t.Fatalf("GET /metrics without a token: %s", a)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want Prometheus's text format (text/plain)", ct)
	}
	body := string(a.body)
	for _, want := range []string{
		fmt.Sprintf(`datashift_rows_copied_total{job="counted"} %d`, src.rows),
		`datashift_bytes_copied_total{job="counted"} `,
		"# TYPE datashift_run_duration_seconds histogram",
		"datashift_leader 1",
		"datashift_store_connected 1",
		"datashift_runs_active 0",
		"datashift_queue_depth 0",
		`datashift_partitions{state="running"} 0`,
		"# TYPE datashift_fire_lag_seconds histogram",
		`datashift_partition_retries_total{job="counted"} 0`,
		`datashift_bad_rows_total{job="counted"} 0`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	if bytes := metricValue(body, `datashift_bytes_copied_total{job="counted"}`); bytes != fmt.Sprint(runs[0].Bytes) {
		t.Errorf("datashift_bytes_copied_total = %s, want the run's %d bytes", bytes, runs[0].Bytes)
	}
	if t.Failed() {
		t.Logf("GET /metrics:\n%s", body)
	}
}

// metricValue is the value of the sample series (its name and labels as
// Prometheus prints them) in a text-format body; "" if there is none.
func metricValue(body, series string) string {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
