package store

import (
	"fmt"
	"strings"
)

// ValidatePath reports whether p is a path both backends accept: absolute,
// no empty, "." or ".." segments, no trailing slash (except "/" itself, and a
// sequential create's prefix, whose name may be only the number), no control
// characters.
// The rules are ZooKeeper's, so a tree built on the embedded store moves to
// ZooKeeper unchanged.
func ValidatePath(p string, sequential bool) error {
	if p == "" || p[0] != '/' {
		return fmt.Errorf("%q: not absolute: %w", p, ErrInvalidPath)
	}
	if p == "/" {
		return nil
	}
	body := p[1:]
	if sequential && strings.HasSuffix(body, "/") {
		body = body[:len(body)-1]
	}
	for seg := range strings.SplitSeq(body, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%q: empty segment: %w", p, ErrInvalidPath)
		case ".", "..":
			return fmt.Errorf("%q: relative segment: %w", p, ErrInvalidPath)
		}
		for _, r := range seg {
			if forbidden(r) {
				return fmt.Errorf("%q: character %U not allowed: %w", p, r, ErrInvalidPath)
			}
		}
	}
	return nil
}

// forbidden lists the characters ZooKeeper rejects in paths: control
// characters, surrogates, private use and specials (invalid UTF-8 decodes to
// U+FFFD, a special).
func forbidden(r rune) bool {
	return r <= 0x1f || (r >= 0x7f && r <= 0x9f) ||
		(r >= 0xd800 && r <= 0xf8ff) || (r >= 0xfff0 && r <= 0xffff)
}

// Join joins segments into an absolute path: Join("/runs", job, "partitions").
func Join(elem ...string) string {
	var b strings.Builder
	for _, e := range elem {
		e = strings.Trim(e, "/")
		if e == "" {
			continue
		}
		b.WriteByte('/')
		b.WriteString(e)
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// Parent returns the parent of an absolute path; the parent of "/" is "/".
func Parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// Base returns the last segment of a path.
func Base(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// SequenceDigits is the width of the number a Sequential create appends.
const SequenceDigits = 10

// Sequence returns the number a Sequential create appended to name (a name
// or a path). Election and queue code orders nodes by it, not by name, as
// prefixes may differ.
func Sequence(name string) (int64, bool) {
	if len(name) < SequenceDigits {
		return 0, false
	}
	var n int64
	for _, c := range []byte(name[len(name)-SequenceDigits:]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// SequenceName formats the name a Sequential create of prefix makes when the
// parent's counter is n; backends that number nodes themselves use it.
func SequenceName(prefix string, n int32) string {
	return fmt.Sprintf("%s%0*d", prefix, SequenceDigits, n)
}
