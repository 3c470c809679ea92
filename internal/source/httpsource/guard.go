package httpsource

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Signature styles of HMAC.Style.
const (
	// StyleGitHub: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>.
	StyleGitHub = "github"
	// StyleSlack: X-Slack-Signature: v0=<hex HMAC-SHA256 of
	// "v0:<X-Slack-Request-Timestamp>:<body>">, with a replay window.
	StyleSlack = "slack"
	// StyleGeneric: a configured header, prefix and encoding over the body.
	StyleGeneric = "generic"
)

// HMAC configures request signatures: an HMAC-SHA256 of the request body with a
// shared secret, as webhook senders (GitHub, Slack and many others) sign. The body
// is signed as sent on the wire, before any Content-Encoding is decoded.
type HMAC struct {
	// Style is github (the default), slack or generic; it sets the defaults of the
	// options below.
	Style string `yaml:"style"`
	// Secret is the shared secret.
	Secret string `yaml:"secret" secret:"true"`
	// Header carries the signature (github: X-Hub-Signature-256, slack:
	// X-Slack-Signature; required for generic).
	Header string `yaml:"header"`
	// Prefix precedes the signature in the header (github: "sha256=", slack: "v0=").
	Prefix string `yaml:"prefix"`
	// Encoding of the signature: hex (default) or base64.
	Encoding string `yaml:"encoding"`
	// TimestampHeader (slack only, default X-Slack-Request-Timestamp) carries the
	// Unix time the signature covers.
	TimestampHeader string `yaml:"timestamp_header"`
	// MaxAge (slack only, default 5m) is how far the timestamp may be from now
	// before the request is refused as a possible replay.
	MaxAge time.Duration `yaml:"max_age"`
}

// resolved returns h with its style's defaults filled in.
func (h HMAC) resolved() HMAC {
	if h.Style == "" {
		h.Style = StyleGitHub
	}
	switch h.Style {
	case StyleGitHub:
		h.Header = cmpOr(h.Header, "X-Hub-Signature-256")
		if h.Prefix == "" {
			h.Prefix = "sha256="
		}
	case StyleSlack:
		h.Header = cmpOr(h.Header, "X-Slack-Signature")
		h.Prefix = cmpOr(h.Prefix, "v0=")
		h.TimestampHeader = cmpOr(h.TimestampHeader, "X-Slack-Request-Timestamp")
		if h.MaxAge == 0 {
			h.MaxAge = 5 * time.Minute
		}
	}
	h.Encoding = cmpOr(h.Encoding, "hex")
	return h
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Validate checks the options; errors start with "hmac.".
func (h HMAC) Validate() error {
	h = h.resolved()
	var errs []error
	switch h.Style {
	case StyleGitHub, StyleSlack, StyleGeneric:
	default:
		errs = append(errs, fmt.Errorf("hmac.style: want github, slack or generic, got %q", h.Style))
	}
	if h.Secret == "" {
		errs = append(errs, errors.New("hmac.secret: empty; set the webhook's shared secret"))
	}
	if h.Header == "" {
		errs = append(errs, errors.New("hmac.header: required with style generic"))
	}
	switch h.Encoding {
	case "hex", "base64":
	default:
		errs = append(errs, fmt.Errorf("hmac.encoding: want hex or base64, got %q", h.Encoding))
	}
	if h.Style != StyleSlack && (h.TimestampHeader != "" || h.MaxAge != 0) {
		errs = append(errs, errors.New("hmac.timestamp_header, hmac.max_age: only for style slack"))
	}
	if h.MaxAge < 0 {
		errs = append(errs, errors.New("hmac.max_age: must be positive"))
	}
	return errors.Join(errs...)
}

// signer checks signatures of one source.
type signer struct {
	cfg HMAC
	now func() time.Time
}

// sigError is a refused signature: the status to answer, the error reason for the
// metric and the message for the client.
type sigError struct {
	code   int
	reason string
	msg    string
}

func (e *sigError) Error() string { return e.msg }

// header checks what can be checked before the body is read: the signature header
// is there and, for slack, the timestamp is fresh. It returns the timestamp.
func (s *signer) header(r *http.Request) (string, *sigError) {
	if r.Header.Get(s.cfg.Header) == "" {
		return "", &sigError{http.StatusUnauthorized, "unauthenticated", "missing signature header " + s.cfg.Header}
	}
	if s.cfg.Style != StyleSlack {
		return "", nil
	}
	ts := r.Header.Get(s.cfg.TimestampHeader)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", &sigError{http.StatusUnauthorized, "unauthenticated", fmt.Sprintf("missing or malformed %s: want Unix seconds", s.cfg.TimestampHeader)}
	}
	age := s.now().Sub(time.Unix(sec, 0))
	if age > s.cfg.MaxAge || age < -s.cfg.MaxAge {
		return "", &sigError{http.StatusForbidden, "stale_signature", fmt.Sprintf("%s is %s from this server's clock, more than the %s allowed; the request may be a replay", s.cfg.TimestampHeader, age.Round(time.Second).Abs(), s.cfg.MaxAge)}
	}
	return ts, nil
}

// verify checks the signature of body (as received) in constant time.
func (s *signer) verify(r *http.Request, ts string, body []byte) *sigError {
	bad := &sigError{http.StatusForbidden, "bad_signature", "signature does not match the body; check the shared secret"}
	got, ok := strings.CutPrefix(r.Header.Get(s.cfg.Header), s.cfg.Prefix)
	if !ok {
		return &sigError{http.StatusForbidden, "bad_signature", fmt.Sprintf("signature in %s does not start with %q", s.cfg.Header, s.cfg.Prefix)}
	}
	var sig []byte
	var err error
	if s.cfg.Encoding == "base64" {
		sig, err = base64.StdEncoding.DecodeString(got)
	} else {
		sig, err = hex.DecodeString(got)
	}
	if err != nil {
		return &sigError{http.StatusForbidden, "bad_signature", fmt.Sprintf("signature in %s is not %s", s.cfg.Header, s.cfg.Encoding)}
	}
	mac := hmac.New(sha256.New, []byte(s.cfg.Secret))
	if s.cfg.Style == StyleSlack {
		mac.Write([]byte("v0:" + ts + ":"))
	}
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return bad
	}
	return nil
}

// RateLimit bounds the request rate of each client: each bearer token when tokens
// are set, otherwise each client IP address.
type RateLimit struct {
	// RequestsPerSecond is the sustained rate.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is how many requests may come at once (default: one second's worth).
	Burst int `yaml:"burst"`
}

// Validate checks the options; errors start with "rate_limit.".
func (l RateLimit) Validate() error {
	var errs []error
	if l.RequestsPerSecond <= 0 || math.IsInf(l.RequestsPerSecond, 0) || math.IsNaN(l.RequestsPerSecond) {
		errs = append(errs, fmt.Errorf("rate_limit.requests_per_second: must be a positive number, got %v", l.RequestsPerSecond))
	}
	if l.Burst < 0 {
		errs = append(errs, fmt.Errorf("rate_limit.burst: must not be negative, got %d", l.Burst))
	}
	return errors.Join(errs...)
}

func (l RateLimit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(1, int(math.Ceil(l.RequestsPerSecond)))
}

// maxLimiters bounds the per-client limiters kept: clients keyed by IP address are
// unbounded in number, memory is not.
const maxLimiters = 10000

// limiters holds one token bucket per client key.
type limiters struct {
	cfg RateLimit
	now func() time.Time

	mu sync.Mutex
	m  map[string]*limiterEntry
	// overflow is shared by new clients while the map is full of active ones.
	overflow *rate.Limiter
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiters(cfg RateLimit, now func() time.Time) *limiters {
	return &limiters{cfg: cfg, now: now, m: map[string]*limiterEntry{},
		overflow: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), cfg.burst())}
}

// allow takes one request for key; when over the limit it returns how long until
// the next request would be allowed.
func (l *limiters) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	e, ok := l.m[key]
	if !ok {
		if len(l.m) >= maxLimiters {
			l.sweep(now)
		}
		if len(l.m) < maxLimiters {
			e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(l.cfg.RequestsPerSecond), l.cfg.burst())}
			l.m[key] = e
		}
	}
	lim := l.overflow
	if e != nil {
		e.last = now
		lim = e.lim
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets clients idle long enough for their bucket to be full again: a new
// bucket for them is the same as the old one.
func (l *limiters) sweep(now time.Time) {
	refill := time.Duration(float64(l.cfg.burst()) / l.cfg.RequestsPerSecond * float64(time.Second))
	for k, e := range l.m {
		if now.Sub(e.last) > refill {
			delete(l.m, k)
		}
	}
}

// clientKey is the rate-limit key of a request: its token when tokens are set
// (tokenIndex ≥ 0), otherwise its IP address.
func clientKey(r *http.Request, tokenIndex int) string {
	if tokenIndex >= 0 {
		return "token:" + strconv.Itoa(tokenIndex)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// retryAfterSeconds rounds a delay up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
