package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestRedacted(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://alice:s3cret@db:5432/app?sslmode=disable", "postgres://alice:xxxxx@db:5432/app?sslmode=disable"},
		{"postgres://alice@db/app", "postgres://alice@db/app"},
		{"host=db user=alice password=s3cret dbname=app", "host=db user=alice password=xxxxx dbname=app"},
		{"host=db password='s 3cret' dbname=app", "host=db password=xxxxx dbname=app"},
		{"alice:s3cret@tcp(127.0.0.1:3306)/app?parseTime=true", "alice:xxxxx@tcp(127.0.0.1:3306)/app?parseTime=true"},
		{"redis://:s3cret@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0"},
		{"mysql://u:p@h/db?password=s3cret", "mysql://u:xxxxx@h/db?password=xxxxx"},
		{"/tmp/demo.sqlite", "/tmp/demo.sqlite"},
		{"root@tcp(127.0.0.1:3306)/test", "root@tcp(127.0.0.1:3306)/test"},
		{"alice:s3cret@x@tcp(db:3306)/app", "alice:xxxxx@tcp(db:3306)/app"},
		{"postgresql://bob:p@ss@w0rds3cret@db/app", "postgresql://bob:xxxxx@db/app"},
		{"postgres://bob@db/app?password=s3cret&sslmode=require", "postgres://bob@db/app?password=xxxxx&sslmode=require"},
		{"postgres://db/app", "postgres://db/app"},
		{"postgres://u:pa/ss3cret@h/db", "postgres://u:xxxxx@h/db"},
		{"host=db password = 'it\\'s a \\\\s3cret' dbname=app", "host=db password = xxxxx dbname=app"},
		{"host=db PASSWORD=s3cret", "host=db PASSWORD=xxxxx"},
		{"host=db user=bob dbname=app", "host=db user=bob dbname=app"},
		{"u:p@ss:w/rds3cret@tcp(h:3306)/db?x=1", "u:xxxxx@tcp(h:3306)/db?x=1"},
		{"u:s3cret@tcp(h)/db?loc=Europe/Berlin", "u:xxxxx@tcp(h)/db?loc=Europe/Berlin"},
		{"u@tcp(h)/db", "u@tcp(h)/db"},
		{"u:@tcp(h)/db", "u:xxxxx@tcp(h)/db"},
		{"/db", "/db"},
		{"redis://user:pa%zzs3cret@h:6379", "redis://user:xxxxx@h:6379"},
		// Passwords typed without percent-encoding are hidden whole.
		{"postgres://u:pa@ss@s3cret@127.0.0.1/db", "postgres://u:xxxxx@127.0.0.1/db"},
		{"postgres://u:pa?ss?s3cret@h/db?sslmode=disable", "postgres://u:xxxxx@h/db?sslmode=disable"},
		{"postgres://u:pa#ss#s3cret@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:pa ss s3cret@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:p@r:t/Le?ak#s3cret x@h:5432/db", "postgres://u:xxxxx@h:5432/db"},
		{"postgres://h:5432/db?user=me@corp&sslmode=disable", "postgres://h:5432/db?user=me@corp&sslmode=disable"},
		{"host=h user=u password=pa ss s3cret dbname=db", "host=h user=u password=xxxxx dbname=db"},
		{"host=h password=pa ss s3cret", "host=h password=xxxxx"},
		{"u:pa ss?s3cret#@tcp(h:3306)/db", "u:xxxxx@tcp(h:3306)/db"},
	}
	for _, tt := range tests {
		got := Redacted(tt.in)
		if got != tt.want {
			t.Errorf("Redacted(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "s 3cret") {
			t.Errorf("Redacted(%q) leaks the password: %q", tt.in, got)
		}
	}
}

// CheckDSN refuses what a driver would split differently from Redacted,
// saying which character to encode and never showing the password.
func TestCheckDSN(t *testing.T) {
	for _, tt := range []struct{ dsn, want string }{
		{"postgres://u:pa@ss@s3cret@h/db", "the password holds '@', which a URL must write as %40"},
		{"postgres://u:pa/s3cret@h/db", "the password holds '/', which a URL must write as %2F"},
		{"postgres://u:pa?s3cret@h/db", "the password holds '?', which a URL must write as %3F"},
		{"postgres://u:pa#s3cret@h/db", "the password holds '#', which a URL must write as %23"},
		{"postgres://u:pa s3cret@h/db", "the password holds a space, which a URL must write as %20"},
		{"postgres://u:pa%s3cret@h/db", "the password holds a '%' not followed by two hex digits, which a URL must write as %25"},
		{"postgres://us er:s3cret@h/db", "the user name holds a space, which a URL must write as %20"},
		{"host=h password=pa s3cret dbname=db", "the password holds a space: quote it, as password='…'"},
		{"postgres://u:pa%40ss:s3cret@h/db?user=me@corp", ""},
		{"postgres://h/db?password=s3cret", ""},
		{"host=h password='pa s3cret' dbname=db", ""},
		{"u:pa@ss/s3cret@tcp(h:3306)/db", ""}, // go-sql-driver splits these as Redacted does
		{"/tmp/a@b.sqlite", ""},
	} {
		err := CheckDSN(tt.dsn)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("CheckDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("CheckDSN(%q) shows the password: %s", tt.dsn, got)
		}
	}
}

type sqlStateError string

func (e sqlStateError) Error() string    { return "server said " + string(e) }
func (e sqlStateError) SQLState() string { return string(e) }

func TestIsTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{sqlStateError("57P01"), true},  // admin shutdown: terminated backend
		{sqlStateError("08006"), true},  // connection failure
		{sqlStateError("40001"), true},  // serialization failure
		{sqlStateError("23505"), false}, // unique violation: same again
		{sqlStateError("22003"), false}, // numeric out of range
		{fmt.Errorf("copy: %w", sqlStateError("53300")), true},
		{&ValueError{Column: "x", Reason: "too long"}, false},
		{Transient(errors.New("anything")), true},
		{context.Canceled, false},
		{io.ErrUnexpectedEOF, true},
	}
	for _, tt := range tests {
		if got := IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestIsBusy(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("connect: %w", sqlStateError("53300")), true}, // too many connections
		{Busy(errors.New("Error 1040: Too many connections")), true},
		{fmt.Errorf("open source: %w", Busy(errors.New("full"))), true},
		{sqlStateError("53200"), false}, // out of memory: not a matter of waiting for room
		{Transient(errors.New("connection reset")), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsBusy(tt.err); got != tt.want {
			t.Errorf("IsBusy(%v) = %v, want %v", tt.err, got, tt.want)
		}
		if tt.want && !IsTransient(tt.err) {
			t.Errorf("IsTransient(%v) = false for a busy store", tt.err)
		}
	}
}
