package connectors

import (
	"regexp"
	"strings"
)

// Redacted replaces a password in a DSN so it can be shown: in logs, errors,
// API answers, the UI. It is the one redactor every connector uses, and it
// never parses the DSN (a DSN a driver refuses must be hidden too). It knows
//
//   - URL DSNs (postgres://u:p@h/db, redis://:p@h): the password runs from the
//     first ':' of the user info to the last '@' before the query, so it may
//     hold '@', ':' or '/';
//   - secret query parameters (?password=p, &sslpassword=p, token, secret);
//   - key=value DSNs (password=p, password = 'p w', with backslash escapes);
//   - go-sql-driver DSNs (u:p@tcp(h)/db), split as the driver does: the last
//     '@' before the last '/'.
//
// Anything else is returned unchanged: those forms carry no password.
func Redacted(dsn string) string {
	if i := strings.Index(dsn, "://"); i > 0 && urlScheme.MatchString(dsn[:i]) {
		head, rest := dsn[:i+3], dsn[i+3:]
		end := len(rest)
		if q := strings.IndexAny(rest, "?#"); q >= 0 {
			end = q
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
				rest = rest[:colon+1] + "xxxxx" + rest[at:]
			}
		}
		return secretParam.ReplaceAllString(head+rest, "${1}xxxxx")
	}
	if kvPassword.MatchString(dsn) {
		return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
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

var (
	urlScheme   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.\-]*$`)
	secretParam = regexp.MustCompile(`(?i)([?&](?:password|pwd|pass|sslpassword|token|secret)=)[^&#]*`)
	kvPassword  = regexp.MustCompile(`(?i)\b((?:password|pwd|pass|sslpassword)\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;]*)`)
)
