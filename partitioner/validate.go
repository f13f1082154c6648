package partitioner

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/datashift/datashift/connectors"
)

// ErrInvalidPlan is wrapped by every error Validate returns.
var ErrInvalidPlan = errors.New("partitioner: invalid plan")

// Validate checks that the plan's ranges cover the source exactly once:
//
//   - key-range and single: key ranges chained in strictly increasing order,
//     the first unbounded below, the last unbounded above, each Hi equal to the
//     next Lo, bounds with one non-NULL value per key column and one type per
//     column; exactly one NULL-key partition when a key column is nullable
//     (at most one otherwise); a single plan has one key range.
//   - pages: page ranges chained from page 0, the last unbounded above.
//   - IDs non-empty and unique; no range resumed (After set) in a fresh plan.
//
// The engine calls it before running a plan it read back from storage.
func (p Plan) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidPlan, fmt.Sprintf(format, args...))
	}
	if len(p.Partitions) == 0 {
		return bad("no partitions")
	}
	ids := map[string]bool{}
	for _, pt := range p.Partitions {
		if pt.ID == "" || ids[pt.ID] {
			return bad("partition ID %q empty or repeated", pt.ID)
		}
		ids[pt.ID] = true
		if pt.Range.After != nil {
			return bad("partition %s is resumed (after %s) in a fresh plan", pt.ID, pt.Range.After)
		}
		if pt.EstRows < 0 {
			return bad("partition %s estimates %d rows", pt.ID, pt.EstRows)
		}
	}
	switch p.Scheme {
	case SchemePages:
		if len(p.Key) > 0 {
			return bad("pages plan for a keyed source")
		}
		return validatePages(p.Partitions, bad)
	case SchemeKeyRange, SchemeSingle:
		return validateKeys(p, bad)
	}
	return bad("unknown scheme %q", p.Scheme)
}

func validatePages(parts []Partition, bad func(string, ...any) error) error {
	var next int64
	for i, pt := range parts {
		r := pt.Range
		if r.Pages == nil || r.Nulls || r.Lo != nil || r.Hi != nil {
			return bad("partition %s in a pages plan is %s", pt.ID, r)
		}
		last := i == len(parts)-1
		switch {
		case r.Pages.Lo != next:
			return bad("partition %s starts at page %d, want %d", pt.ID, r.Pages.Lo, next)
		case last && r.Pages.Hi != 0:
			return bad("last partition %s ends at page %d, want unbounded", pt.ID, r.Pages.Hi)
		case !last && r.Pages.Hi <= r.Pages.Lo:
			return bad("partition %s is %s: empty or unbounded before the last", pt.ID, r)
		}
		next = r.Pages.Hi
	}
	return nil
}

func validateKeys(p Plan, bad func(string, ...any) error) error {
	var keyed []Partition
	nulls := 0
	for _, pt := range p.Partitions {
		switch r := pt.Range; {
		case r.Pages != nil:
			return bad("partition %s is a page range in a %s plan", pt.ID, p.Scheme)
		case r.Nulls:
			if r.Lo != nil || r.Hi != nil {
				return bad("NULL-key partition %s has bounds", pt.ID)
			}
			nulls++
		default:
			keyed = append(keyed, pt)
		}
	}
	switch {
	case nulls > 1:
		return bad("%d NULL-key partitions", nulls)
	case nulls == 1 && len(p.Key) == 0:
		return bad("NULL-key partition in a plan with no key")
	case nulls == 0 && nullable(p.Key):
		return bad("key %v is nullable but no partition holds NULL keys", keyNames(p.Key))
	case len(keyed) == 0:
		return bad("no partition for non-NULL keys")
	case p.Scheme == SchemeSingle && len(keyed) != 1:
		return bad("single plan with %d key ranges", len(keyed))
	case keyed[0].Range.Lo != nil:
		return bad("first key range %s is bounded below", keyed[0].Range)
	case keyed[len(keyed)-1].Range.Hi != nil:
		return bad("last key range %s is bounded above", keyed[len(keyed)-1].Range)
	}
	// Type-check every bound before comparing: CompareKeys panics on keys of
	// the wrong length or type, and a plan may come from anywhere.
	types := make([]reflect.Type, len(p.Key))
	for _, pt := range keyed {
		for _, k := range []connectors.Key{pt.Range.Lo, pt.Range.Hi} {
			if k == nil {
				continue
			}
			if len(k) != len(p.Key) {
				return bad("partition %s: bound %s has %d values for key %v", pt.ID, k, len(k), keyNames(p.Key))
			}
			for i, v := range k {
				if v == nil || !orderable(v) {
					return bad("partition %s: bound %s: column %q is NULL or not orderable", pt.ID, k, p.Key[i].Name)
				}
				t := reflect.TypeOf(v)
				if types[i] == nil {
					types[i] = t
				} else if types[i] != t {
					return bad("partition %s: bound %s: column %q is %v, other bounds %v", pt.ID, k, p.Key[i].Name, t, types[i])
				}
			}
		}
	}
	for i := 1; i < len(keyed); i++ {
		prev, cur := keyed[i-1].Range, keyed[i].Range
		switch {
		case prev.Hi == nil || cur.Lo == nil:
			return bad("partitions %s and %s: unbounded range in the middle", keyed[i-1].ID, keyed[i].ID)
		case connectors.CompareKeys(prev.Hi, cur.Lo) != 0:
			return bad("partitions %s and %s: gap or overlap between %s and %s", keyed[i-1].ID, keyed[i].ID, prev, cur)
		case cur.Hi != nil && connectors.CompareKeys(cur.Lo, cur.Hi) >= 0:
			return bad("partition %s is %s: empty or inverted", keyed[i].ID, cur)
		}
	}
	return nil
}
