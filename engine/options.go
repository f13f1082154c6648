package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/datashift/datashift/connectors"
)

// optionErrors refuses option names the source or sink connector does not
// declare (connectors.Option), one error per name, so that a typo in a job
// spec is refused at submit rather than when a run opens the connector.
// Unknown connector types are reported by Validate and skipped here.
func (j *Job) optionErrors() SpecErrors {
	var errs SpecErrors
	check := func(side, typ string, declared connectors.Options, given map[string]string) {
		names := make([]string, 0, len(given))
		for k := range given {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			if slices.Contains(declared.Names(), k) {
				continue
			}
			reason := fmt.Sprintf("unknown option for %s %s (known: %s)", typ, side, strings.Join(declared.Names(), ", "))
			if len(declared) == 0 {
				reason = fmt.Sprintf("unknown option: the %s %s takes no options", typ, side)
			}
			errs = append(errs, &SpecError{Job: j.Name, Field: side + ".options." + k, Reason: reason})
		}
	}
	if opts, ok := connectors.SourceOptions(j.Source.Type); ok {
		check("source", j.Source.Type, opts, j.Source.Options)
	}
	if opts, ok := connectors.SinkOptions(j.Sink.Type); ok {
		check("sink", j.Sink.Type, opts, j.Sink.Options)
	}
	return errs
}
