package engine

import (
	"testing"
	"time"
)

func mustUTC(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

// Daylight saving, in two zones and both transitions: a wall time skipped
// in spring fires at the transition, a wall time repeated in autumn fires
// once, at its first occurrence.
func TestScheduleNextDaylightSaving(t *testing.T) {
	cases := []struct {
		name, cron, zone, after string
		want                    []string // the next fires, UTC
	}{
		{"berlin spring: 02:30 fires at 03:00 CEST", "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"berlin spring: every 15 minutes, the gap's ticks fire once at 03:00", "*/15 * * * *", "Europe/Berlin", "2026-03-29T00:40:00Z",
			[]string{"2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"}},
		{"berlin autumn: 02:30 fires once", "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"berlin autumn: hourly skips the repeated 02:00", "0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},
		{"berlin autumn: from inside the repeated hour, its tick has passed", "30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z",
			[]string{"2026-10-26T01:30:00Z"}},
		{"new york spring: 02:30 fires at 03:00 EDT", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"new york autumn: 01:30 fires once", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"utc by default", "0 12 * * *", "", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T12:00:00Z"}},
		{"seconds field", "*/20 * * * * *", "", "2026-01-01T00:00:05Z",
			[]string{"2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"}},
		{"descriptor in a zone", "@daily", "America/New_York", "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"}},
		{"@every ticks at multiples since the epoch", "@every 2s", "Europe/Berlin", "2026-01-01T00:00:01.5Z",
			[]string{"2026-01-01T00:00:02Z", "2026-01-01T00:00:04Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSchedule(c.cron, c.zone)
			if err != nil {
				t.Fatal(err)
			}
			got := s.NextFires(mustUTC(t, c.after), len(c.want))
			for i, w := range c.want {
				if i >= len(got) || !got[i].Equal(mustUTC(t, w)) {
					t.Fatalf("fires after %s: got %v, want %v", c.after, got, c.want)
				}
			}
		})
	}
}

func TestParseScheduleRefuses(t *testing.T) {
	for _, c := range []struct{ cron, zone, want string }{
		{"61 * * * *", "", "end of range (61) above maximum (59): 61"},
		{"* * *", "", "expected 5 to 6 fields, found 3: [* * *]"},
		{"0 * * * *", "Mars/Olympus", `unknown time zone "Mars/Olympus"`},
		{"CRON_TZ=UTC 0 * * * *", "", "put the time zone in schedule.timezone, not in the cron expression"},
		{"@every 1500ms", "", "@every needs whole seconds, at least 1s (got 1.5s)"},
	} {
		_, err := ParseSchedule(c.cron, c.zone)
		if err == nil || err.Error() != c.want {
			t.Errorf("ParseSchedule(%q, %q) = %v, want %q", c.cron, c.zone, err, c.want)
		}
	}
}
