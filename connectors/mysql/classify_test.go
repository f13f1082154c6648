package mysql

import (
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/datashift/datashift/connectors"
)

// Which server errors the engine retries, and which it waits out without
// using up tries (a server out of connections).
func TestClassify(t *testing.T) {
	tests := []struct {
		err             error
		transient, busy bool
	}{
		{&mysql.MySQLError{Number: 1040, Message: "Too many connections"}, true, true},
		{&mysql.MySQLError{Number: 1203, Message: "User root already has more than 'max_user_connections' active connections"}, true, true},
		{&mysql.MySQLError{Number: 1213, Message: "Deadlock found"}, true, false},
		{&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false, false},
		{mysql.ErrInvalidConn, true, false},
	}
	for _, tt := range tests {
		err := classify(fmt.Errorf("open source: %w", tt.err))
		if got := connectors.IsTransient(err); got != tt.transient {
			t.Errorf("%v: transient %v, want %v", tt.err, got, tt.transient)
		}
		if got := connectors.IsBusy(err); got != tt.busy {
			t.Errorf("%v: busy %v, want %v", tt.err, got, tt.busy)
		}
	}
}
