// Package redis is a sink that writes each row as a Redis hash, exactly
// once: every commit sends its rows and the partition's commit record in one
// MULTI/EXEC, fenced by the partition's lease.
//
// DSN: redis://[user:password@]host:port/db (rediss:// for TLS). The key of
// each row comes from a template over its columns, option key, such as
// "orders:{id}" or "eu:{region}:{id}"; every column becomes a hash field,
// its value in the text forms of package textform (the same as CSV). A NULL
// is no field at all: the field is deleted, so writing a row again with a
// NULL clears what an earlier write put there.
//
// Options:
//
//	key         the key template (required); column names in braces
//	ttl         a Go duration (90s, 24h): EXPIRE set on every key written
//	binary      base64 (default), hex, or raw (the bytes as they are)
//	commit_key  where the commit records live (default datashift:commits)
//
// Append and upsert both write with HSET, which replaces the fields it names
// and keeps the others. Truncate deletes the hashes whose keys match the
// template (SCAN MATCH … TYPE hash, then UNLINK); it needs a template that
// starts with fixed text, so that it cannot reach keys of other datasets.
//
// # Commit records
//
// The sink is a connectors.CommitLog (see connectors/COMMITS.md). Each
// partition's record is one string key, <commit_key>:<job>:<run>:<partition>,
// holding the record's JSON. Claim reads it under WATCH of that key,
// refuses with ErrLeaseLost when it names a newer lease, and SETs the new
// lease in a MULTI/EXEC, so two claims cannot both win. Forget deletes the
// run's records: the keys SCAN MATCH <commit_key>:<job>:<run>:* finds (the
// names quoted for the glob) that hold a record of that job and run.
//
// A writer keeps the batches it is given (retained, as Arrow: memory is
// what the job's commit_rows lets pile up) and sends nothing before Commit.
// Commit renders them into commands, so while it runs the commit's rows
// are held a second time, as text.
// Commit WATCHes the partition's record key and the keys of its rows,
// checks that the stored record still carries the writer's lease (else
// ErrLeaseLost, nothing sent) and that every row key is a hash or absent,
// then sends the rows' HSET/HDEL/EXPIRE and the record's SET in one
// MULTI/EXEC. A change to a watched key in between aborts the EXEC; Commit
// then checks again from the start (a newer lease: ErrLeaseLost) and
// retries a few times before giving up with a transient error. The type
// check matters because Redis does not roll back: a command that fails
// inside EXEC (WRONGTYPE over a string key) leaves the others applied, the
// record included, and the rows it did not write would be skipped on
// resume. Checking under WATCH first makes that failure happen before
// anything is sent.
//
// Only the partition's own claims and commits touch its record key, so the
// partitions of a run, in one process or many, never abort each other's
// transactions; what can abort a commit is a newer claim of the same
// partition, or another client writing one of its row keys meanwhile.
//
// The commit records must stay out of the dataset's way:
//
//   - a commit_key under the template's fixed prefix (template
//     "datashift:commits:{id}" with the default commit_key) is refused when
//     the sink opens: its rows would land among the records;
//   - Truncate never deletes a key that starts with "<commit_key>:", even
//     when the template's pattern matches it (template "datashift:{id}");
//   - a row whose key the template renders under "<commit_key>:" (possible
//     when the template's fixed text is a prefix of it) is a
//     connectors.ValueError at Write, set aside like any value the sink
//     cannot hold.
//
// Job names and run ids must not contain ':', so that the keys under
// <commit_key>:<job>:<run>: belong to one run (the engine's job names and
// run ids never do); partition ids may hold anything.
//
// # Durability
//
// MULTI/EXEC is atomic in the server's memory: no client ever sees part of a
// commit, and while the server stays up it holds a commit's rows and record
// together or neither. What survives a crash of the server is up to its
// persistence, not to this sink: with appendonly yes and appendfsync always
// an acknowledged commit is on disk; with appendfsync everysec (the usual
// setting) the last second or so of acknowledged commits can be lost; with
// RDB snapshots only, everything since the last snapshot; with neither,
// everything. A snapshot is taken between commands and the AOF holds a
// transaction as one MULTI…EXEC block (an incomplete block at the tail is
// dropped on load), so what is lost is whole commits, rows and record
// together, and the records never claim rows the server does not hold. A
// replica promoted by a failover can likewise lack the last commits. The
// engine notices either: the sink's record then counts fewer commits than
// the checkpoint, and the partition is refused rather than guessed at.
package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/textform"
)

const (
	typeName         = "redis"
	defaultCommitKey = "datashift:commits"
)

func init() {
	connectors.RegisterSink(typeName, OpenSink, sinkOptions...)
}

// sinkOptions are the options the sink takes (connectors/REFERENCE.md).
var sinkOptions = connectors.Options{
	{Name: "key", Doc: "required: the key template, column names in braces (`orders:{id}`); the key of each row's hash"},
	{Name: "ttl", Doc: "a Go duration in whole seconds (`90s`, `24h`): EXPIRE set on every key written; default none"},
	{Name: "binary", Doc: "how binary values are written as field values: `base64` (default), `hex` or `raw` (the bytes as they are)"},
	{Name: "commit_key", Doc: "the prefix of the commit record keys, `<commit_key>:<job>:<run>:<partition>` (default `datashift:commits`)"},
}

var (
	_ connectors.Sink        = (*Sink)(nil)
	_ connectors.SinkChecker = (*Sink)(nil)
	_ connectors.CommitLog   = (*Sink)(nil)
	_ connectors.Writer      = (*writer)(nil)
)

// Sink writes rows as hashes.
type Sink struct {
	client *redis.Client
	where  string // the redacted DSN, for messages
	tmpl   template
	keys   []string // the source key, to name rows in errors
	ttl    time.Duration
	binary textform.Binary
	// commitKey is the commit_key option; a partition's record lives at
	// commitKey:job:run:partition, so every key under commitPrefix is the
	// log's.
	commitKey, commitPrefix string
	// mayHitLog is set when the template's fixed text is a prefix of
	// commitPrefix: only then can a row's key land among the records.
	mayHitLog bool
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
	s := &Sink{where: where, keys: cfg.Key, binary: textform.Base64, commitKey: defaultCommitKey}
	switch cfg.Mode {
	case "", connectors.Append, connectors.Upsert, connectors.Truncate:
	default:
		return nil, fmt.Errorf("%s sink: unknown mode %q", typeName, cfg.Mode)
	}
	ov, err := sinkOptions.Values(cfg.Options)
	if err != nil {
		if k, _ := sinkOptions.Unknown(cfg.Options); k == "pipeline" {
			return nil, fmt.Errorf("%s sink: option pipeline is no longer supported: a commit sends its rows in one MULTI/EXEC (the job's commit_rows sizes it)", typeName)
		}
		return nil, fmt.Errorf("%s sink: %w", typeName, err)
	}
	keyTemplate, _ := ov.Lookup("key")
	if v, ok := ov.Lookup("ttl"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s sink: option ttl %q: want a positive Go duration such as 90s or 24h", typeName, v)
		}
		if d < time.Second || d%time.Second != 0 {
			return nil, fmt.Errorf("%s sink: option ttl %q: want whole seconds", typeName, v)
		}
		s.ttl = d
	}
	if v, ok := ov.Lookup("binary"); ok {
		if s.binary, err = textform.ParseBinary(v); err != nil {
			return nil, fmt.Errorf("%s sink: option binary: %w", typeName, err)
		}
	}
	if v, ok := ov.Lookup("commit_key"); ok {
		if v == "" {
			return nil, fmt.Errorf("%s sink: option commit_key is empty", typeName)
		}
		s.commitKey = v
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
	s.commitPrefix = s.commitKey + ":"
	if strings.HasPrefix(s.tmpl.prefix, s.commitPrefix) {
		return nil, fmt.Errorf("%s sink: key template %q makes every key under commit_key %q, among the commit records: choose a commit_key outside the dataset", typeName, keyTemplate, s.commitKey)
	}
	s.mayHitLog = strings.HasPrefix(s.commitPrefix, s.tmpl.prefix)
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

// Check is what Prepare checks before it changes anything (SinkChecker).
func (s *Sink) Check(ctx context.Context, schema *arrow.Schema) error {
	if _, _, err := s.check(schema); err != nil {
		return err
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Prepare checks the schema against the template, that the server answers
// and, when truncate, deletes the hashes the template can produce. The
// commit log needs nothing made: its keys appear with the first claim.
func (s *Sink) Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error {
	if err := s.Check(ctx, schema); err != nil {
		return err
	}
	if !truncate {
		return nil
	}
	return s.truncate(ctx)
}

// truncate unlinks the hashes matching the template's pattern, except any
// key of the commit log: a template such as "datashift:{id}" matches the
// default commit_key's keys too (the records are strings, which TYPE hash
// leaves out already; the prefix check keeps the log's namespace whatever
// it holds).
func (s *Sink) truncate(ctx context.Context) error {
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
		keys = slices.DeleteFunc(keys, s.isRecordKey)
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

// isRecordKey reports whether key is in the commit log's namespace.
func (s *Sink) isRecordKey(key string) bool { return strings.HasPrefix(key, s.commitPrefix) }

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

// OpenWriter returns the writer of one partition. It sends nothing: the
// partition is claimed (Claim) before, and rows go out at Commit.
func (s *Sink) OpenWriter(_ context.Context, spec connectors.WriterSpec) (connectors.Writer, error) {
	if spec.Schema == nil {
		return nil, fmt.Errorf("%s sink: writer %s has no schema", typeName, spec.Partition)
	}
	key, err := s.recordKey(spec.Job, spec.Run, spec.Partition)
	if err != nil {
		return nil, err
	}
	tmplCols, keyCols, err := s.check(spec.Schema)
	if err != nil {
		return nil, err
	}
	return &writer{s: s, spec: spec, key: key, tmplCols: tmplCols, keyCols: keyCols}, nil
}

// Close closes the client.
func (s *Sink) Close() error { return s.client.Close() }
