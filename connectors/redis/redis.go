// Package redis is a sink that writes each row as a Redis hash.
//
// DSN: redis://[user:password@]host:port/db (rediss:// for TLS). The key of
// each row comes from a template over its columns, Options["key"], such as
// "orders:{id}" or "eu:{region}:{id}"; every column becomes a hash field,
// its value in the text forms of package textform (the same as CSV). A NULL
// is no field at all: the field is deleted, so writing a row again with a
// NULL clears what an earlier write put there.
//
// Options:
//
//	key       the key template (required); column names in braces
//	ttl       a Go duration (90s, 24h): EXPIRE set on every key written
//	binary    base64 (default), hex, or raw (the bytes as they are)
//	pipeline  commands sent per round trip (default 1000)
//
// Append and upsert both write with HSET, which replaces the fields it names
// and keeps the others. Truncate deletes the hashes whose keys match the
// template (SCAN MATCH … TYPE hash, then UNLINK); it needs a template that
// starts with fixed text, so that it cannot reach keys of other datasets.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/textform"
)

const (
	typeName        = "redis"
	defaultPipeline = 1000
)

func init() {
	connectors.RegisterSink(typeName, OpenSink)
}

var (
	_ connectors.Sink   = (*Sink)(nil)
	_ connectors.Writer = (*writer)(nil)
)

// Sink writes rows as hashes.
type Sink struct {
	client   *redis.Client
	where    string // the redacted DSN, for messages
	tmpl     template
	keys     []string // the source key, to name rows in errors
	ttl      time.Duration
	binary   textform.Binary
	pipeline int
}

// OpenSink checks cfg and makes the client; it does not connect yet.
func OpenSink(_ context.Context, cfg connectors.SinkConfig) (connectors.Sink, error) {
	where := connectors.Redacted(cfg.DSN)
	if cfg.DSN == "" {
		return nil, fmt.Errorf("%s sink: dsn is required (redis://host:port/db)", typeName)
	}
	opts, err := redis.ParseURL(cfg.DSN)
	if err != nil {
		// url.Parse errors quote the whole DSN, password included.
		msg := strings.ReplaceAll(err.Error(), cfg.DSN, where)
		return nil, fmt.Errorf("%s sink: dsn %s: %s (want redis://[user:password@]host:port/db)", typeName, where, msg)
	}
	s := &Sink{where: where, keys: cfg.Key, binary: textform.Base64, pipeline: defaultPipeline}
	switch cfg.Mode {
	case "", connectors.Append, connectors.Upsert, connectors.Truncate:
	default:
		return nil, fmt.Errorf("%s sink: unknown mode %q", typeName, cfg.Mode)
	}
	var keyTemplate string
	for k, v := range cfg.Options {
		switch k {
		case "key":
			keyTemplate = v
		case "ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s sink: option ttl %q: want a positive Go duration such as 90s or 24h", typeName, v)
			}
			if d < time.Second || d%time.Second != 0 {
				return nil, fmt.Errorf("%s sink: option ttl %q: want whole seconds", typeName, v)
			}
			s.ttl = d
		case "binary":
			if s.binary, err = textform.ParseBinary(v); err != nil {
				return nil, fmt.Errorf("%s sink: option binary: %w", typeName, err)
			}
		case "pipeline":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%s sink: option pipeline %q: want a positive integer", typeName, v)
			}
			s.pipeline = n
		default:
			return nil, fmt.Errorf("%s sink: unknown option %q (known: key, ttl, binary, pipeline)", typeName, k)
		}
	}
	if keyTemplate == "" {
		return nil, fmt.Errorf("%s sink: option key is required: a key template such as \"orders:{id}\"", typeName)
	}
	if s.tmpl, err = parseTemplate(keyTemplate); err != nil {
		return nil, fmt.Errorf("%s sink: option key: %w", typeName, err)
	}
	if cfg.Mode == connectors.Truncate && s.tmpl.prefix == "" {
		return nil, fmt.Errorf("%s sink: truncate needs a key template that starts with fixed text (%q starts with a column): it would delete keys of other datasets", typeName, keyTemplate)
	}
	s.client = redis.NewClient(opts)
	return s, nil
}

// check verifies that the template's columns and the key columns are in
// schema and that every column has a text form.
func (s *Sink) check(schema *arrow.Schema) (tmplCols, keyCols []int, err error) {
	if tmplCols, err = connectors.ColumnIndexes(schema, s.tmpl.columns()); err != nil {
		return nil, nil, fmt.Errorf("%s sink: key template %q: %w", typeName, s.tmpl.text, err)
	}
	if keyCols, err = connectors.ColumnIndexes(schema, s.keys); err != nil {
		return nil, nil, fmt.Errorf("%s sink: key: %w", typeName, err)
	}
	for _, f := range schema.Fields() {
		if err := textform.CheckType(f); err != nil {
			return nil, nil, fmt.Errorf("%s sink: %w", typeName, err)
		}
	}
	return tmplCols, keyCols, nil
}

// Prepare checks the schema against the template, that the server answers
// and, when truncate, deletes the hashes the template can produce.
func (s *Sink) Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error {
	if _, _, err := s.check(schema); err != nil {
		return err
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.fail("ping", err)
	}
	if !truncate {
		return nil
	}
	if s.tmpl.prefix == "" {
		return fmt.Errorf("%s sink: truncate needs a key template that starts with fixed text (%q starts with a column)", typeName, s.tmpl.text)
	}
	pattern := s.tmpl.pattern()
	var cursor uint64
	for {
		keys, next, err := s.client.ScanType(ctx, cursor, pattern, 1000, "hash").Result()
		if err != nil {
			return s.fail("truncate: scan "+pattern, err)
		}
		if len(keys) > 0 {
			if err := s.client.Unlink(ctx, keys...).Err(); err != nil {
				return s.fail("truncate: unlink", err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// fail wraps a Redis error with where it happened, marking the ones after
// which the same work may succeed.
func (s *Sink) fail(what string, err error) error {
	err = fmt.Errorf("%s sink %s: %s: %w", typeName, s.where, what, err)
	if transientReply(err) {
		return connectors.Transient(err)
	}
	return err
}

// transientReply is true for server replies that mean "not now": loading a
// dump, busy with a script, a failover in progress.
func transientReply(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// OpenWriter returns the writer of one partition.
//
// A resumed partition needs no cleanup: rows past the checkpoint that an
// earlier attempt wrote are written again by the same HSET/HDEL/EXPIRE,
// which leaves each hash exactly as one write would (HSET replaces the
// fields, HDEL removes the NULL ones), so a row written twice is a row
// written once.
func (s *Sink) OpenWriter(_ context.Context, spec connectors.WriterSpec) (connectors.Writer, error) {
	if spec.Schema == nil {
		return nil, fmt.Errorf("%s sink: writer %s has no schema", typeName, spec.Partition)
	}
	tmplCols, keyCols, err := s.check(spec.Schema)
	if err != nil {
		return nil, err
	}
	return &writer{s: s, schema: spec.Schema, pipe: s.client.Pipeline(), tmplCols: tmplCols, keyCols: keyCols}, nil
}

// Close closes the client.
func (s *Sink) Close() error { return s.client.Close() }
