package postgres

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datashift/datashift/connectors"
)

// Which server errors the engine retries, and which it waits out without
// using up tries (a server out of connections).
func TestClassify(t *testing.T) {
	tests := []struct {
		err             error
		transient, busy bool
	}{
		{&pgconn.PgError{Code: "53300", Message: "sorry, too many clients already"}, true, true},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true, false},
		{&pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, true, false},
		{&pgconn.PgError{Code: "23505", Message: "duplicate key value"}, false, false},
		{errors.New("conn closed"), true, false},
	}
	for _, tt := range tests {
		err := classify(fmt.Errorf("connect to somewhere: %w", tt.err))
		if got := connectors.IsTransient(err); got != tt.transient {
			t.Errorf("%v: transient %v, want %v", tt.err, got, tt.transient)
		}
		if got := connectors.IsBusy(err); got != tt.busy {
			t.Errorf("%v: busy %v, want %v", tt.err, got, tt.busy)
		}
	}
}
