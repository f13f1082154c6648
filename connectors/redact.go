package connectors

import (
	"fmt"
	"regexp"
	"strings"
)

// Redacted replaces a password in a DSN so it can be shown: in logs, errors,
// API answers, the UI. It is the one redactor every connector uses, and it
// never parses the DSN (a DSN a driver refuses must be hidden too). It knows
//
//   - URL DSNs (postgres://u:p@h/db, redis://:p@h): the password runs from the
//     first ':' of the user info to the '@' that ends it, the last '@' that
//     is not in a query value (user=me@corp), so a mistyped password that
//     holds '@', ':', '/', '?', '#' or a space is hidden whole;
//   - secret query parameters (?password=p, &sslpassword=p, token, secret);
//   - key=value DSNs (password=p, password = 'p w', with backslash escapes;
//     an unquoted password with spaces runs up to the next key=);
//   - go-sql-driver DSNs (u:p@tcp(h)/db), split as the driver does: the last
//     '@' before the last '/'.
//
// Anything else is returned unchanged: those forms carry no password.
func Redacted(dsn string) string {
	if i := strings.Index(dsn, "://"); i > 0 && urlScheme.MatchString(dsn[:i]) {
		if start, end, ok := urlSecret(dsn, i+3); ok {
			dsn = dsn[:start] + "xxxxx" + dsn[end:]
		}
		return secretParam.ReplaceAllString(dsn, "${1}xxxxx")
	}
	if start, end, ok := kvSecret(dsn); ok {
		out := ""
		for ok {
			out += dsn[:start] + "xxxxx"
			dsn = dsn[end:]
			start, end, ok = kvSecret(dsn)
		}
		return out + dsn
	}
	end := strings.LastIndex(dsn, "/")
	if end < 0 {
		end = len(dsn)
	}
	if at := strings.LastIndex(dsn[:end], "@"); at > 0 {
		if colon := strings.IndexByte(dsn[:at], ':'); colon >= 0 {
			return dsn[:colon+1] + "xxxxx" + dsn[at:]
		}
	}
	return dsn
}

// urlUserinfo finds the user info of a URL DSN whose authority starts at
// from: it ends at the last '@' that is not in a query value.
func urlUserinfo(dsn string, from int) (at int, ok bool) {
	for at = strings.LastIndexByte(dsn, '@'); at >= from; at = strings.LastIndexByte(dsn[:at], '@') {
		if !inQueryValue(dsn[from:at]) {
			return at, true
		}
	}
	return 0, false
}

// inQueryValue reports whether an '@' after s is in a query parameter
// (?user=me@corp) rather than ending a password that holds a '?'.
func inQueryValue(s string) bool {
	q := strings.IndexByte(s, '?')
	if q < 0 || strings.IndexByte(s[q:], '#') >= 0 {
		return false
	}
	param := s[q+1:]
	if k := strings.LastIndexByte(param, '&'); k >= 0 {
		param = param[k+1:]
	}
	return strings.Contains(param, "=")
}

// urlSecret is where the password of a URL DSN lies, dsn[start:end].
func urlSecret(dsn string, from int) (start, end int, ok bool) {
	at, ok := urlUserinfo(dsn, from)
	if !ok {
		return 0, 0, false
	}
	colon := strings.IndexByte(dsn[from:at], ':')
	if colon < 0 {
		return 0, 0, false
	}
	return from + colon + 1, at, true
}

// kvSecret is where the first password of a key=value DSN lies,
// dsn[start:end]. An unquoted value runs on over words without '=': a
// password typed with spaces and no quotes is hidden whole.
func kvSecret(dsn string) (start, end int, ok bool) {
	m := kvPassword.FindStringSubmatchIndex(dsn)
	if m == nil {
		return 0, 0, false
	}
	start, end = m[3], m[3]
	if end < len(dsn) && (dsn[end] == '\'' || dsn[end] == '"') {
		q := dsn[end]
		for end++; end < len(dsn) && dsn[end] != q; end++ {
			if dsn[end] == '\\' {
				end++
			}
		}
		return start, min(end+1, len(dsn)), true
	}
	for {
		for end < len(dsn) && !isSpace(dsn[end]) && dsn[end] != '&' && dsn[end] != ';' {
			end++
		}
		next := end
		for next < len(dsn) && isSpace(dsn[next]) {
			next++
		}
		word := next
		for word < len(dsn) && !isSpace(dsn[word]) && dsn[word] != '=' {
			word++
		}
		if next == end || next == len(dsn) || word < len(dsn) && dsn[word] == '=' {
			return start, end, true
		}
		end = word // a word without '=': still the password
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// CheckDSN refuses a DSN whose user name or password a driver would split
// differently from Redacted, without showing either: a URL DSN's user info
// with a character a URL must percent-encode ('@', '/', '?', '#', a space),
// or a key=value DSN's unquoted password with spaces. A driver given such a
// DSN takes part of the password for the host or a parameter, and its
// errors then quote that part (lookup ss@Leak@127.0.0.1: no such host).
func CheckDSN(dsn string) error {
	if i := strings.Index(dsn, "://"); i > 0 && urlScheme.MatchString(dsn[:i]) {
		from := i + 3
		at, ok := urlUserinfo(dsn, from)
		if !ok {
			return nil
		}
		info := dsn[from:at]
		what := "user name"
		for j := 0; j < len(info); j++ {
			c := info[j]
			switch {
			case c == ':' && what == "user name":
				what = "password"
			case c == '%' && j+2 < len(info) && isHex(info[j+1]) && isHex(info[j+2]):
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80,
				strings.IndexByte("-._~!$&'()*+,;=:", c) >= 0:
			default:
				return fmt.Errorf("the %s holds %s, which a URL must write as %%%02X", what, describeChar(c), c)
			}
		}
		return nil
	}
	if start, end, ok := kvSecret(dsn); ok && dsn[start] != '\'' && dsn[start] != '"' &&
		strings.IndexAny(dsn[start:end], " \t\r\n") >= 0 {
		return fmt.Errorf("the password holds a space: quote it, as password='…'")
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func describeChar(c byte) string {
	switch c {
	case ' ':
		return "a space"
	case '%':
		return "a '%' not followed by two hex digits"
	}
	return fmt.Sprintf("%q", c)
}

var (
	urlScheme   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.\-]*$`)
	secretParam = regexp.MustCompile(`(?i)([?&](?:password|pwd|pass|sslpassword|token|secret)=)[^&#]*`)
	kvPassword  = regexp.MustCompile(`(?i)\b((?:password|pwd|pass|sslpassword)\s*=\s*)`)
)
