package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a job's cron schedule in its time zone.
//
// Daylight saving, explicitly: cron fields are matched against the local
// wall clock. A wall time that does not exist (the hour skipped in spring)
// fires at the transition, once, standing for every tick in the gap; a wall
// time that happens twice (the hour repeated in autumn) fires at its first
// occurrence only. `@every D` is not a wall-clock schedule: it ticks at
// whole multiples of D since the Unix epoch, the same instants for every
// node, whatever the zone.
type Schedule struct {
	wall  cron.Schedule // matched against wall-clock time written as UTC
	every time.Duration // for @every
	loc   *time.Location
}

var wallParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a cron expression (five fields, six with seconds
// first, or a descriptor such as @hourly or @every 5m) in a time zone ("":
// UTC).
func ParseSchedule(expr, timezone string) (*Schedule, error) {
	loc := time.UTC
	if timezone != "" {
		l, err := time.LoadLocation(timezone)
		if err != nil {
			return nil, fmt.Errorf("unknown time zone %q", timezone)
		}
		loc = l
	}
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("put the time zone in schedule.timezone, not in the cron expression")
	}
	if rest, ok := strings.CutPrefix(expr, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("@every: %v", err)
		}
		if d < time.Second || d%time.Second != 0 {
			return nil, fmt.Errorf("@every needs whole seconds, at least 1s (got %s)", d)
		}
		return &Schedule{every: d, loc: loc}, nil
	}
	s, err := wallParser.Parse("CRON_TZ=UTC " + expr)
	if err != nil {
		return nil, err
	}
	return &Schedule{wall: s, loc: loc}, nil
}

// maxSearch bounds the wall ticks Next looks through for one fire: every
// tick inside a daylight-saving gap maps to the same instant.
const maxSearch = 100000

// Next returns the first fire strictly after t (the zero time if the
// schedule never fires again).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return t.Truncate(s.every).Add(s.every)
	}
	w := wallOf(t, s.loc)
	for range maxSearch {
		w = s.wall.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		if at := instantOf(w, s.loc); at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// NextFires lists the next n fires after t.
func (s *Schedule) NextFires(t time.Time, n int) []time.Time {
	var out []time.Time
	for len(out) < n {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// wallOf is t's wall clock in loc, written as a UTC time.
func wallOf(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// instantOf is the instant a wall time (written as UTC) fires at in loc:
// the earlier of two when the wall time happens twice, the transition when
// it never happens.
func instantOf(w time.Time, loc *time.Location) time.Time {
	// The offsets in force a little before and a little after: a time
	// zone changes its offset at most once in a day.
	_, before := w.Add(-12 * time.Hour).In(loc).Zone()
	_, after := w.Add(12 * time.Hour).In(loc).Zone()
	var found []time.Time
	for _, off := range []int{before, after} {
		at := w.Add(-time.Duration(off) * time.Second)
		if wallOf(at, loc).Equal(w) {
			found = append(found, at)
		}
	}
	switch {
	case len(found) == 2 && found[1].Before(found[0]):
		return found[1]
	case len(found) > 0:
		return found[0]
	}
	// In the gap: the wall clock jumps over w at the transition, which is
	// where the zone in force after it begins.
	at := w.Add(-time.Duration(before) * time.Second)
	start, _ := at.In(loc).ZoneBounds()
	return start
}

// Prev is the last tick before t, searching forward from first (which is
// a tick before t).
func (s *Schedule) Prev(t, first time.Time) time.Time {
	p := first
	for {
		n := s.Next(p)
		if n.IsZero() || !n.Before(t) {
			return p
		}
		p = n
	}
}

// TickSpan is the ticks of a schedule a fire stands for (or that were
// skipped): the first, the last and how many.
type TickSpan struct {
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	Count int       `json:"count,omitempty"`
}

// Add counts tick t, later than those counted.
func (s *TickSpan) Add(t time.Time) {
	if s.Count == 0 {
		s.First = t
	}
	s.Last = t
	s.Count++
}
