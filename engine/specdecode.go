package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// decodeJob decodes a spec (YAML, or JSON, which is YAML) into j. Every
// problem is a SpecError named by the field's path in the spec, in the
// spec's words: an unknown field says which known one was meant, a value
// of the wrong kind says what the field wants. The document is walked
// against Job's fields before it is decoded because yaml's own errors
// name Go types (`field x not found in type engine.SinkSpec`) and give
// lines, not fields.
func decodeJob(data []byte, j *Job) error {
	var doc yaml.Node
	err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc)
	if errors.Is(err, io.EOF) {
		return SpecErrors{{Reason: "the spec is empty: a job needs at least name, source and sink"}}
	}
	if err != nil {
		return SpecErrors{{Reason: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return SpecErrors{{Reason: "the spec is empty: a job needs at least name, source and sink"}}
	}
	w := specWalker{job: jobNameOf(top)}
	w.walk(top, reflect.TypeOf(*j), "")
	if len(w.errs) > 0 {
		return w.errs
	}
	// The walk has refused what the decoder would; KnownFields stays as
	// the rule's second line of defence.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(j); err != nil {
		return SpecErrors{{Job: w.job, Reason: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	return nil
}

// jobNameOf is the document's name field, if it has a plain one, so that
// errors found while decoding name the job too.
func jobNameOf(top *yaml.Node) string {
	if top.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if k, v := top.Content[i], top.Content[i+1]; k.Value == "name" && v.Kind == yaml.ScalarNode {
			return v.Value
		}
	}
	return ""
}

type specWalker struct {
	job  string
	errs SpecErrors
}

func (w *specWalker) bad(path, format string, args ...any) {
	w.errs = append(w.errs, &SpecError{Job: w.job, Field: path, Reason: fmt.Sprintf(format, args...)})
}

var unmarshaler = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// walk checks node n against type t, the Go type it will be decoded into.
func (w *specWalker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // the field's zero value
	}
	if reflect.PointerTo(t).Implements(unmarshaler) || t.Kind() != reflect.Struct && t.Kind() != reflect.Slice {
		w.decodeValue(n, t, path)
		return
	}
	if t.Kind() == reflect.Slice {
		if n.Kind != yaml.SequenceNode {
			w.bad(path, "want a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		w.bad(path, "want a mapping of fields (%s), got %s", strings.Join(yamlFields(t), ", "), describe(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" { // <<: *defaults
			w.walk(v, t, path)
			continue
		}
		f, ok := yamlField(t, k.Value)
		if !ok {
			w.bad(join(path, k.Value), "unknown field (%s)", suggest(k.Value, yamlFields(t)))
			continue
		}
		if def, ok := zeroIsDefault[join(path, k.Value)]; ok && v.Kind == yaml.ScalarNode && v.Tag == "!!int" && v.Value == "0" {
			w.bad(join(path, k.Value), "must be at least 1 (leave it out for the default, %d)", def)
			continue
		}
		w.walk(v, f.Type, join(path, k.Value))
	}
}

// decodeValue decodes a leaf (a scalar, or a type that decodes itself) on
// its own, to name the field when it does not fit.
func (w *specWalker) decodeValue(n *yaml.Node, t reflect.Type, path string) {
	err := n.Decode(reflect.New(t).Interface())
	var te *yaml.TypeError
	switch {
	case err == nil:
	case errors.As(err, &te):
		w.bad(path, "want %s, got %s", wants(t), describe(n))
	default:
		w.bad(path, "%s", lineNumber.ReplaceAllString(err.Error(), ""))
	}
}

var lineNumber = regexp.MustCompile(`^(yaml: )?line \d+: `)

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// yamlField finds the field of struct t whose yaml name is name.
func yamlField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlFields(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if n := yamlName(t.Field(i)); n != "" && n != "-" {
			names = append(names, n)
		}
	}
	return names
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// wants says in the spec's words what a field of type t takes.
func wants(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "text"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// describe says what a node holds, for "want …, got …".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return fmt.Sprintf("%q", n.Value)
}

// suggest names the known field closest to a misspelt one, or lists them
// all when none is close.
func suggest(name string, known []string) string {
	best, bestD := "", len(name)/2+1 // closer than half the name
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return "did you mean " + best + "?"
	}
	return "known: " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Options are a connector's settings, name to value, both taken as the
// text the spec has: `null: NULL` is the option "null" set to "NULL",
// where plain YAML would read a null key (and drop it) and a null value.
// The connector parses the values it takes.
type Options map[string]string

func (o *Options) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping of option names to values, got %s", describe(n))
	}
	out := make(Options, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" || k.Value == "~" {
			return fmt.Errorf("option names are text, got %s", describe(k))
		}
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: want text, got %s", k.Value, describe(v))
		}
		value := v.Value
		if v.Tag == "!!null" && value == "~" {
			value = ""
		}
		if _, dup := out[k.Value]; dup {
			return fmt.Errorf("%s: given twice", k.Value)
		}
		out[k.Value] = value
	}
	*o = out
	return nil
}
