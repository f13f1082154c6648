package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
)

// maxAttempts bounds the optimistic transactions of one Claim or Commit:
// each aborted EXEC means another client changed a watched key in between
// (the partition's record, or the key of one of the commit's rows).
const maxAttempts = 8

// runPrefix is where the records of job's run live: every key that starts
// with it is one partition's record. Job and run must not contain ':', so
// that the prefix belongs to one run (the partition id after it may hold
// anything).
func (s *Sink) runPrefix(job, run string) (string, error) {
	switch {
	case job == "" || run == "":
		return "", fmt.Errorf("%s sink: job and run must be set (got %q, %q)", typeName, job, run)
	case strings.Contains(job, ":") || strings.Contains(run, ":"):
		return "", fmt.Errorf("%s sink: job %q, run %q: a ':' would make the record keys %s:%s:%s:<partition> ambiguous", typeName, job, run, s.commitKey, job, run)
	}
	return s.commitPrefix + job + ":" + run + ":", nil
}

// recordKey is the key of the partition's record,
// <commit_key>:<job>:<run>:<partition>.
func (s *Sink) recordKey(job, run, partition string) (string, error) {
	if partition == "" {
		return "", fmt.Errorf("%s sink: job %q run %q: the partition must be set", typeName, job, run)
	}
	prefix, err := s.runPrefix(job, run)
	if err != nil {
		return "", err
	}
	return prefix + partition, nil
}

// globEscape quotes s for SCAN MATCH: Redis's glob treats '*', '?', '['
// and '\' as special, and a '\' before any byte matches that byte (']' is
// special only inside a class; quoting it too is harmless).
func globEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// readRecord decodes the value a GET of the record key returned; found is
// false when the partition has no record.
func (s *Sink) readRecord(cmd *redis.StringCmd, key string) (rec connectors.CommitRecord, found bool, err error) {
	raw, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, s.fail("get "+key, err)
	}
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return rec, false, fmt.Errorf("%s sink %s: commit record %s: %w", typeName, s.where, key, err)
	}
	return rec, true, nil
}

// Claim takes the partition for spec.Lease: it reads the partition's
// record under WATCH of its key and stores the new lease with a SET in a
// MULTI/EXEC.
func (s *Sink) Claim(ctx context.Context, spec connectors.WriterSpec) (connectors.CommitRecord, error) {
	key, err := s.recordKey(spec.Job, spec.Run, spec.Partition)
	if err != nil {
		return connectors.CommitRecord{}, err
	}
	var out connectors.CommitRecord
	err = s.optimistic(ctx, "claim of partition "+spec.Partition, []string{key}, func(tx *redis.Tx) error {
		rec, found, err := s.readRecord(tx.Get(ctx, key), key)
		if err != nil {
			return err
		}
		if found && rec.Lease > spec.Lease {
			return fmt.Errorf("%s sink: partition %s of job %s run %s: lease %d claimed it after lease %d: %w", typeName, spec.Partition, spec.Job, spec.Run, rec.Lease, spec.Lease, connectors.ErrLeaseLost)
		}
		if found && rec.Lease == spec.Lease {
			out = rec // the same holder again
			return nil
		}
		if !found {
			rec = connectors.CommitRecord{Job: spec.Job, Run: spec.Run, Partition: spec.Partition}
		}
		rec.Lease = spec.Lease
		data, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("%s sink: commit record of partition %s: %w", typeName, spec.Partition, err)
		}
		if _, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, data, 0)
			return nil
		}); err != nil {
			if errors.Is(err, redis.TxFailedErr) {
				return err
			}
			return s.fail("claim: set "+key, err)
		}
		out = rec
		return nil
	})
	return out, err
}

// Forget deletes the records of the run: the keys SCAN MATCH
// <commit_key>:<job>:<run>:* finds (the names quoted for the glob) that
// hold a record of that job, run and partition. The check leaves alone a
// key that only looks like one, such as a record of a sink whose
// commit_key is "<commit_key>:<job>" (its job would be <run>).
func (s *Sink) Forget(ctx context.Context, job, run string) error {
	prefix, err := s.runPrefix(job, run)
	if err != nil {
		return err
	}
	pattern := globEscape(prefix) + "*"
	var cursor uint64
	for {
		keys, next, err := s.client.ScanType(ctx, cursor, pattern, 1000, "string").Result()
		if err != nil {
			return s.fail("forget: scan "+pattern, err)
		}
		if err := s.forgetKeys(ctx, job, run, prefix, keys); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// forgetKeys deletes those of keys that hold a record of the run.
func (s *Sink) forgetKeys(ctx context.Context, job, run, prefix string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	gets := make([]*redis.StringCmd, len(keys))
	// Each reply is checked below; the pipeline's own error is the first of them.
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			gets[i] = p.Get(ctx, k)
		}
		return nil
	})
	var del []string
	for i, k := range keys {
		raw, err := gets[i].Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue // gone since the SCAN
		case err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
			continue // no longer a string: not a record
		case err != nil:
			return s.fail("forget: get "+k, err)
		}
		var rec connectors.CommitRecord
		if json.Unmarshal([]byte(raw), &rec) != nil || rec.Job != job || rec.Run != run || prefix+rec.Partition != k {
			continue
		}
		del = append(del, k)
	}
	if len(del) == 0 {
		return nil
	}
	if err := s.client.Del(ctx, del...).Err(); err != nil {
		return s.fail("forget: del "+del[0], err)
	}
	return nil
}

// optimistic runs fn under WATCH of keys until it returns anything but
// redis.TxFailedErr (its EXEC aborted because a watched key changed), at
// most maxAttempts times, with a short random pause between attempts. fn
// wraps its own errors and returns redis.TxFailedErr as it is.
func (s *Sink) optimistic(ctx context.Context, what string, keys []string, fn func(*redis.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.client.Watch(ctx, func(tx *redis.Tx) error {
			if err := tx.Watch(ctx, keys...).Err(); err != nil {
				return s.fail(what+": watch", err)
			}
			return fn(tx)
		})
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if attempt == maxAttempts {
			return connectors.Transient(fmt.Errorf("%s sink %s: %s: %d transactions in a row aborted: another client changed a watched key (the record %s, or a row's key) each time", typeName, s.where, what, attempt, keys[0]))
		}
		pause := time.Duration(rand.Int64N(int64(attempt) * int64(5*time.Millisecond)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}
