package connectors

import (
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces a password in a DSN so it can be shown: in logs, errors,
// API answers, the UI. It knows URL DSNs (postgres://u:p@h/db,
// redis://:p@h), key=value DSNs (password=p) and go-sql-driver DSNs
// (u:p@tcp(h)/db). Anything else is returned unchanged: those forms carry no
// password.
func Redacted(dsn string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			q := u.Query()
			for k := range q {
				if isSecretParam(k) {
					q.Set(k, "xxxxx")
				}
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	dsn = kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
	// go-sql-driver form: user:password@protocol(address)/db. The password
	// may itself hold '@', so the credentials end at the last '@' before
	// the address.
	head := dsn
	if i := strings.IndexAny(dsn, "(/"); i >= 0 {
		head = dsn[:i]
	}
	if at := strings.LastIndex(head, "@"); at > 0 {
		if colon := strings.Index(head[:at], ":"); colon >= 0 {
			dsn = dsn[:colon+1] + "xxxxx" + dsn[at:]
		}
	}
	return dsn
}

var kvPassword = regexp.MustCompile(`(?i)\b((?:password|pwd|pass)\s*=\s*)('[^']*'|"[^"]*"|[^\s&;]+)`)

func isSecretParam(k string) bool {
	switch strings.ToLower(k) {
	case "password", "pwd", "pass", "sslpassword", "token", "secret":
		return true
	}
	return false
}
