package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/datashift/datashift/coordinator"
)

type jobScheduleBody struct {
	Name     string                   `json:"name"`
	Schedule coordinator.ScheduleInfo `json:"schedule"`
}

// The job's answer shows its next five fires and pause state; pause and
// resume answer with the schedule; fires lists the fire records; unknown
// jobs are 404 and writes need the token.
func TestAPISchedule(t *testing.T) {
	n := startAPI(t, nodeOpts{token: testToken})
	src := demoSource(t, 100)
	if a := n.do(http.MethodPost, "/api/jobs", src.yaml("hourly", "schedule: {cron: \"0 * * * *\", timezone: Europe/Berlin}\n")); a.code != http.StatusCreated {
		t.Fatalf("submit: %s", a)
	}
	var job jobScheduleBody
	n.do(http.MethodGet, "/api/jobs/hourly", "").decode(t, &job)
	fires := job.Schedule.NextFires
	if len(fires) != 5 || job.Schedule.Paused || job.Schedule.Misfire != "fire_once" || job.Schedule.Overlap != "skip" {
		t.Fatalf("schedule: %+v", job.Schedule)
	}
	for i, f := range fires {
		if f.Minute() != 0 || f.Second() != 0 || !f.After(time.Now()) || (i > 0 && f.Sub(fires[i-1]) != time.Hour) {
			t.Errorf("next fires of an hourly job: %v", fires)
			break
		}
	}
	if a := n.anon(http.MethodPost, "/api/jobs/hourly/pause", ""); a.code != http.StatusUnauthorized {
		t.Errorf("pause without the token: %s", a)
	}
	var info coordinator.ScheduleInfo
	a := n.do(http.MethodPost, "/api/jobs/hourly/pause", "")
	if a.code != http.StatusOK {
		t.Fatalf("pause: %s", a)
	}
	a.decode(t, &info)
	if !info.Paused || info.PausedAt.IsZero() {
		t.Errorf("paused: %+v", info)
	}
	n.do(http.MethodPost, "/api/jobs/hourly/resume", "").decode(t, &info)
	if info.Paused {
		t.Errorf("resumed: %+v", info)
	}
	var records []coordinator.FireRecord
	n.do(http.MethodGet, "/api/jobs/hourly/fires", "").decode(t, &records)
	if len(records) != 0 {
		t.Errorf("fires of a job that never fired: %+v", records)
	}
	for _, path := range []string{"/api/jobs/nope/pause", "/api/jobs/nope/resume"} {
		if e := n.do(http.MethodPost, path, "").errBody(t, http.StatusNotFound); !strings.Contains(e.Error, `job "nope": no such job`) {
			t.Errorf("%s: %s", path, e.Error)
		}
	}
	n.do(http.MethodGet, "/api/jobs/nope/fires", "").errBody(t, http.StatusNotFound)
}

// Bad schedules are refused naming the field; so are an unknown upstream
// and a cycle; deleting an upstream is a conflict naming its dependants.
func TestAPIScheduleRefusals(t *testing.T) {
	n := startAPI(t, nodeOpts{})
	src := demoSource(t, 100)
	for _, c := range []struct{ extra, field, msg string }{
		{"schedule: {cron: \"61 * * * *\"}\n", "schedule.cron", "end of range (61) above maximum (59): 61"},
		{"schedule: {cron: \"* * * * *\", misfire: often}\n", "schedule.misfire", `must be fire_once, skip or fire_all (got "often")`},
		{"schedule: {cron: \"* * * * *\", misfire_cap: 5000}\n", "schedule.misfire_cap", "must be between 1 and 1000 (got 5000)"},
		{"schedule: {cron: \"* * * * *\", timezone: Mars/Olympus}\n", "schedule.timezone", `unknown time zone "Mars/Olympus"`},
		{"schedule: {after: [ghost]}\n", "schedule.after", `unknown job "ghost"`},
	} {
		e := n.do(http.MethodPost, "/api/jobs", src.yaml("bad", c.extra)).errBody(t, http.StatusBadRequest)
		if e.Field != c.field || !strings.Contains(e.Error, c.msg) {
			t.Errorf("%q: field %q, error %q; want %s: %s", c.extra, e.Field, e.Error, c.field, c.msg)
		}
	}
	for _, name := range []string{"up", "mid", "down"} {
		extra := ""
		switch name {
		case "mid":
			extra = "schedule: {after: [up]}\n"
		case "down":
			extra = "schedule: {after: [mid]}\n"
		}
		if a := n.do(http.MethodPost, "/api/jobs", src.yaml(name, extra)); a.code != http.StatusCreated {
			t.Fatalf("submit %s: %s", name, a)
		}
	}
	e := n.do(http.MethodPut, "/api/jobs/up", src.yaml("up", "schedule: {after: [down]}\n")).errBody(t, http.StatusBadRequest)
	if e.Field != "schedule.after" || !strings.Contains(e.Error, "would close a cycle: up runs after down runs after mid runs after up") {
		t.Errorf("cycle: %+v", e)
	}
	e = n.do(http.MethodDelete, "/api/jobs/up", "").errBody(t, http.StatusConflict)
	if !strings.Contains(e.Error, `job "up": other jobs run after it: mid`) {
		t.Errorf("delete an upstream: %s", e.Error)
	}
	var job jobScheduleBody
	n.do(http.MethodGet, "/api/jobs/mid", "").decode(t, &job)
	if len(job.Schedule.After) != 1 || job.Schedule.After[0] != "up" || len(job.Schedule.Dependants) != 1 || job.Schedule.Dependants[0] != "down" {
		t.Errorf("mid's upstreams and dependants: %+v", job.Schedule)
	}
	if a := n.do(http.MethodDelete, "/api/jobs/down", ""); a.code != http.StatusNoContent {
		t.Errorf("delete a leaf: %s", a)
	}
	if a := n.do(http.MethodDelete, "/api/jobs/mid", ""); a.code != http.StatusNoContent {
		t.Errorf("delete mid once down is gone: %s", a)
	}
}
