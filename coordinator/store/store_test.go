package store

import (
	"errors"
	"testing"
)

func TestValidatePath(t *testing.T) {
	ok := []struct {
		p   string
		seq bool
	}{
		{"/", false}, {"/a", false}, {"/a/b.c", false}, {"/..a", false}, {"/a..", false},
		{"/名前", false}, {"/q/", true}, {"/q/run-", true}, {"/", true},
	}
	for _, c := range ok {
		if err := ValidatePath(c.p, c.seq); err != nil {
			t.Errorf("ValidatePath(%q, %v) = %v, want nil", c.p, c.seq, err)
		}
	}
	bad := []struct {
		p   string
		seq bool
	}{
		{"", false}, {"a", false}, {"/a/", false}, {"//", false}, {"/a//b", false},
		{"/.", false}, {"/a/..", false}, {"/./a", false}, {"/a\x00", false}, {"/a\x7f", false},
		{"/\xff", false}, {"/q//", true}, {"/\ue000", false},
	}
	for _, c := range bad {
		if err := ValidatePath(c.p, c.seq); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ValidatePath(%q, %v) = %v, want ErrInvalidPath", c.p, c.seq, err)
		}
	}
}

func TestPathHelpers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Join(), "/"},
		{Join("/"), "/"},
		{Join("runs", "job", "partitions"), "/runs/job/partitions"},
		{Join("/runs/", "/job"), "/runs/job"},
		{Join("/", "a"), "/a"},
		{Parent("/a/b"), "/a"},
		{Parent("/a"), "/"},
		{Parent("/"), "/"},
		{Parent("/q/"), "/q"},
		{Base("/a/b"), "b"},
		{Base("/"), ""},
		{SequenceName("/q/run-", 42), "/q/run-0000000042"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestSequence(t *testing.T) {
	for _, c := range []struct {
		name string
		n    int64
		ok   bool
	}{
		{"run-0000000042", 42, true},
		{"/election/n-2147483647", 2147483647, true},
		{"0000000000", 0, true},
		{"run-42", 0, false},
		{"run-00000000x2", 0, false},
		{"run--000000001", 0, false},
		{"run-+000000001", 0, false},
	} {
		n, ok := Sequence(c.name)
		if n != c.n || ok != c.ok {
			t.Errorf("Sequence(%q) = %d, %v; want %d, %v", c.name, n, ok, c.n, c.ok)
		}
	}
}
