package config

import (
	"net/url"
	"strings"
)

// RedactURL returns a NATS server URL fit for logs, errors and the start-up banner:
// the password is replaced by "xxxxx" (net/url's Redacted), and so is a user name
// that stands alone, since NATS reads nats://TOKEN@host as a token. A URL net/url
// cannot parse loses its whole user part, as parse errors echo it.
func RedactURL(raw string) string {
	if u, err := url.Parse(withScheme(raw)); err == nil {
		if u.User != nil {
			if _, ok := u.User.Password(); !ok {
				u.User = url.User("xxxxx")
			}
		}
		return u.Redacted()
	}
	prefix, userinfo, rest := splitUserinfo(raw)
	if userinfo == "" {
		return raw
	}
	return prefix + "xxxxx" + rest
}

// RedactURLs redacts each URL with RedactURL; the caller owns the new slice.
func RedactURLs(raws []string) []string {
	out := make([]string, len(raws))
	for i, r := range raws {
		out[i] = RedactURL(r)
	}
	return out
}

// URLSecrets returns the secrets RedactURL hides in a server URL (the password, or a
// token), as written and percent-decoded, so that a caller can scrub them from error
// messages it did not write, such as a parse error quoting the URL.
func URLSecrets(raw string) []string {
	_, userinfo, _ := splitUserinfo(raw)
	if userinfo == "" {
		return nil
	}
	secret := userinfo
	if _, pass, ok := strings.Cut(userinfo, ":"); ok {
		secret = pass
	}
	if secret == "" {
		return nil
	}
	out := []string{secret}
	if dec, err := url.PathUnescape(secret); err == nil && dec != secret && dec != "" {
		out = append(out, dec)
	}
	return out
}

// withScheme adds nats:// to a URL written without a scheme, as nats.go does;
// net/url would otherwise read "user:pass@host" as scheme "user".
func withScheme(raw string) string {
	if strings.Contains(raw, "://") {
		return raw
	}
	return "nats://" + raw
}

// splitUserinfo cuts a URL into what precedes its user part ("nats://"), the user
// part and the rest (from the '@' on), without parsing it.
func splitUserinfo(raw string) (prefix, userinfo, rest string) {
	s := raw
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, s = s[:i+3], s[i+3:]
	}
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	at := strings.LastIndexByte(s[:end], '@')
	if at < 0 {
		return prefix, "", s
	}
	return prefix, s[:at], s[at:]
}
