package connectors

import (
	"fmt"
	"slices"
	"strings"
)

// Option is a key a connector takes in SourceConfig.Options or
// SinkConfig.Options. A connector declares its options when it registers
// (RegisterSource, RegisterSink); the declarations are what the engine
// checks a job spec against, what connectors/REFERENCE.md lists, and the
// only names OptionValues.Lookup answers for.
type Option struct {
	Name string
	// Doc is one line for the reference: what the option does, the values
	// it takes and its default.
	Doc string
}

// Options is the list of options one side of a connector declares.
type Options []Option

// Names returns the declared names, in declaration order.
func (o Options) Names() []string {
	names := make([]string, len(o))
	for i, opt := range o {
		names[i] = opt.Name
	}
	return names
}

// Unknown returns the first key of given (in sorted order) that o does
// not declare, and an error saying so and listing the known names; "" and
// nil when every key is declared.
func (o Options) Unknown(given map[string]string) (string, error) {
	keys := make([]string, 0, len(given))
	for k := range given {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(o.Names(), k) {
			if len(o) == 0 {
				return k, fmt.Errorf("unknown option %q (takes no options)", k)
			}
			return k, fmt.Errorf("unknown option %q (known: %s)", k, strings.Join(o.Names(), ", "))
		}
	}
	return "", nil
}

// Values checks given against o and returns them for reading: the one way
// a connector reads its options. It fails on a key o does not declare, so a
// typo in a job spec fails when the connector opens instead of being ignored.
func (o Options) Values(given map[string]string) (OptionValues, error) {
	if _, err := o.Unknown(given); err != nil {
		return OptionValues{}, err
	}
	return OptionValues{declared: o, given: given}, nil
}

// OptionValues are the options a job gave a connector, checked against the
// connector's declarations.
type OptionValues struct {
	declared Options
	given    map[string]string
}

// Lookup returns the value given for the option name and whether one was
// given. It panics when name is not declared: a connector reading an option
// it did not declare is a bug (the option would be refused in every job
// spec, and missing from the reference), and the connectors' tests reach
// every Lookup.
func (v OptionValues) Lookup(name string) (string, bool) {
	if !slices.Contains(v.declared.Names(), name) {
		panic(fmt.Sprintf("connectors: option %q read but not declared (declared: %s)", name, strings.Join(v.declared.Names(), ", ")))
	}
	s, ok := v.given[name]
	return s, ok
}
