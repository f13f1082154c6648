package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// ValueError is a value the sink (or the source's type map) cannot represent.
// It is not retryable: the same row fails the same way again.
type ValueError struct {
	Column string
	Key    Key    // the row's key, nil when the source has none
	Value  string // a short rendering of the value, for the message
	Reason string
}

func (e *ValueError) Error() string {
	where := fmt.Sprintf("column %q", e.Column)
	if e.Key != nil {
		where += fmt.Sprintf(", row with key %s", e.Key)
	}
	if e.Value != "" {
		return fmt.Sprintf("%s: value %s: %s", where, e.Value, e.Reason)
	}
	return where + ": " + e.Reason
}

// ErrNoTable is a sink's target table missing while SinkConfig.CreateTable
// is off. Its text names the job spec's field, so every sink says the same.
var ErrNoTable = errors.New("table does not exist (set sink.create_table: true to create it)")

// ErrLeaseLost means a partition's lease has been taken over by another
// holder: a sink's commit record names a newer lease than the writer's, or a
// checkpoint save finds the lease gone. It is never retried: the holder stops
// at once, and the new holder continues from the sink's record.
var ErrLeaseLost = errors.New("partition lease lost")

// ErrSnapshotGone is returned by a source asked to read in an exported
// snapshot that no longer exists (its exporter ended). The run's snapshot
// is exported again by whoever holds it now; the read can then go on in
// the new one.
var ErrSnapshotGone = errors.New("the run's exported snapshot is gone")

// TransientError marks an error after which the same work may succeed: a
// dropped connection, a server restarting. The engine retries the partition
// from its checkpoint.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// Transient marks err as retryable; nil stays nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

// BusyError marks a connection the store refused for want of room (too
// many connections): the work can start once others end theirs. The
// engine waits for that without using up the partition's retries, as
// partitions of the same run are often what fills the store.
type BusyError struct{ Err error }

func (e *BusyError) Error() string { return e.Err.Error() }
func (e *BusyError) Unwrap() error { return e.Err }

// Busy marks err as the store being out of connections; nil stays nil.
func Busy(err error) error {
	if err == nil {
		return nil
	}
	return &BusyError{Err: err}
}

// IsBusy reports whether err is a connection refused for want of room:
// marked Busy, or SQLSTATE 53300 (too many connections) whatever its origin.
func IsBusy(err error) bool {
	var be *BusyError
	if errors.As(err, &be) {
		return true
	}
	var se interface{ SQLState() string }
	return errors.As(err, &se) && se.SQLState() == "53300"
}

// IsTransient reports whether retrying the work from its checkpoint may
// succeed: errors marked Transient, and network failures whatever their
// origin. A cancelled context is not transient: somebody asked to stop.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrLeaseLost) {
		return false
	}
	var te *TransientError
	var be *BusyError
	if errors.As(err, &te) || errors.As(err, &be) {
		return true
	}
	var ve *ValueError
	if errors.As(err, &ve) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var se interface{ SQLState() string }
	if errors.As(err, &se) && transientSQLState(se.SQLState()) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

// transientSQLState reports whether a standard SQLSTATE means "try again":
// the connection broke (class 08), the server is shutting down or starting
// (57P01-57P03), it is out of connections or resources (class 53), or the
// transaction lost a serialization race or a deadlock (40001, 40P01).
func transientSQLState(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"):
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", "40001", "40P01":
		return true
	}
	return false
}
