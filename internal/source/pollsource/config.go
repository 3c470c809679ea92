// Package pollsource is the `poll` source, the MozDef pull model: it fetches a REST
// API on an interval (SaaS audit logs: Okta, GitHub, …), follows its pagination,
// takes the records at a JSON path, and keeps a time cursor so that each run asks
// only for what is new.
//
// Delivery: the cursor, and where a run is in its pagination, are persisted only
// after a page's records are stored (Intake.Store returned nil), in an fsynced file
// DataDir/sources/<name>/cursor.json. After a crash the run resumes at the page it
// had not finished; records it fetches again are skipped by their id (id_path),
// and a page stored just before the crash but not yet recorded in the file is
// dropped by the intake stream's duplicate detection (Records.ID, within
// buffer.duplicate_window), as long as the API returns the same records for it.
package pollsource

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the poll source's config.
type Config struct {
	// URL is fetched with GET. {cursor} in it is replaced by the cursor (the newest
	// record time stored, less cursor.overlap; cursor.initial at first), query-escaped.
	URL string `yaml:"url"`
	// Interval is the time between the end of one run and the start of the next.
	Interval time.Duration `yaml:"interval"`
	// Jitter spreads runs: each wait is Interval ± up to this fraction of it (0 to 0.5).
	Jitter float64 `yaml:"jitter"`
	// Records is the JSON path of the records in a page: $ (the page is an array of
	// records, or one record), $.a.b, $.a[*]; an array found there stands for its
	// elements.
	Records string `yaml:"records"`
	// IDPath is the JSON path of a record's unique id, within the record ($.uuid).
	// Records fetched again (through cursor.overlap, the cursor's own instant, or a
	// page repeated after a crash) are skipped by it. Empty: a record is known by a
	// hash of its bytes, which misses a record the API serves changed.
	IDPath string `yaml:"id_path"`
	// Cursor makes runs incremental.
	Cursor Cursor `yaml:"cursor"`
	// Pagination says how to reach the next page of a run.
	Pagination Pagination `yaml:"pagination"`
	// Headers are sent with every request (values may hold ${VAR} secrets).
	Headers map[string]string `yaml:"headers" secret:"true"`
	// Auth authenticates requests.
	Auth Auth `yaml:"auth"`
	// MaxPages caps the pages of one run; a run that reaches it stops there, keeps
	// its place and goes on at the next interval (counted as outcome page_cap).
	MaxPages int `yaml:"max_pages"`
	// RequestTimeout bounds one request, body included.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxRetries is how many times one request is retried after a 429, a 5xx, a
	// rate-limit 403 or a network error before the run gives up until the next
	// interval.
	MaxRetries int `yaml:"max_retries"`
	// RetryBackoff is the first wait before a retry without Retry-After or a rate
	// limit reset; it doubles each time, up to a minute.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// MaxRetryWait caps a wait a server asks for (Retry-After, X-RateLimit-Reset).
	MaxRetryWait time.Duration `yaml:"max_retry_wait"`
}

// Cursor is the time-window cursor.
type Cursor struct {
	// From is the JSON path of a record's time within the record ($.published): an
	// RFC 3339 string, or a number of Unix seconds (milliseconds when above 10^11).
	From string `yaml:"from"`
	// Initial is the cursor before the first run (RFC 3339).
	Initial string `yaml:"initial"`
	// Overlap is subtracted from the cursor in the URL, to fetch again records the
	// API made visible late; they are skipped by id_path.
	Overlap time.Duration `yaml:"overlap"`
	// Format is how {cursor} is written: rfc3339 (UTC, as 2024-01-01T00:00:00Z,
	// fractions kept), unix or unix_ms.
	Format string `yaml:"format"`
}

// Pagination selects how a run moves from page to page.
type Pagination struct {
	// Type: none (one page per run), link (the Link header's rel="next" URL, RFC
	// 8288), token (a token in the body, sent back as a query parameter), offset.
	// A run also ends at a page with no records.
	Type string `yaml:"type"`
	// TokenPath is the JSON path of the next-page token in the body (token).
	TokenPath string `yaml:"token_path"`
	// TokenParam is the query parameter the token is sent in (token).
	TokenParam string `yaml:"token_param"`
	// OffsetParam and LimitParam are the query parameters of offset paging; Limit is
	// the page size asked for. A page with fewer records than Limit is the last.
	OffsetParam string `yaml:"offset_param"`
	LimitParam  string `yaml:"limit_param"`
	Limit       int    `yaml:"limit"`
}

// Auth is how requests authenticate; type none, bearer, basic, api_key or oauth2.
type Auth struct {
	// Type is none, bearer (Authorization: Bearer token), basic, api_key (a key in
	// a header of your choice) or oauth2 (client credentials). For a scheme of its
	// own (Okta's "SSWS <token>") set the Authorization header in headers instead.
	Type string `yaml:"type"`
	// Token is the bearer token (bearer).
	Token string `yaml:"token" secret:"true"`
	// Username and Password are HTTP basic credentials (basic).
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// Header and Key: the key is sent in this header (api_key), e.g. X-API-Key.
	Header string `yaml:"header"`
	Key    string `yaml:"key" secret:"true"`
	// TokenURL, ClientID, ClientSecret and Scopes are an OAuth 2.0 client
	// credentials grant (RFC 6749 section 4.4) (oauth2). The token is fetched before
	// the first request, renewed before it expires and after a 401.
	TokenURL     string   `yaml:"token_url"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret" secret:"true"`
	Scopes       []string `yaml:"scopes"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		Interval:       60 * time.Second,
		Jitter:         0.1,
		Records:        "$",
		Cursor:         Cursor{Format: "rfc3339"},
		Pagination:     Pagination{Type: "none", Limit: 100},
		Auth:           Auth{Type: "none"},
		MaxPages:       100,
		RequestTimeout: 30 * time.Second,
		MaxRetries:     5,
		RetryBackoff:   time.Second,
		MaxRetryWait:   5 * time.Minute,
	}
}

// DefaultFormat implements config.FormatDefaulter.
func (c *Config) DefaultFormat() string { return "json" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	u, err := url.Parse(strings.ReplaceAll(c.URL, "{cursor}", "x"))
	switch {
	case c.URL == "":
		add("url: required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		add("url: want an http(s) URL, got %q", c.URL)
	case u.User != nil:
		add("url: credentials do not belong in the URL; use auth")
	}
	if c.Interval < time.Second {
		add("interval: want at least 1s, got %s", c.Interval)
	}
	if c.Jitter < 0 || c.Jitter > 0.5 {
		add("jitter: want 0 to 0.5, got %v", c.Jitter)
	}
	if _, err := compilePath(c.Records); err != nil {
		add("records: %v", err)
	}
	if c.IDPath != "" {
		if _, err := compilePath(c.IDPath); err != nil {
			add("id_path: %v", err)
		}
	}
	if c.Cursor.From != "" {
		if _, err := compilePath(c.Cursor.From); err != nil {
			add("cursor.from: %v", err)
		}
		if _, err := time.Parse(time.RFC3339Nano, c.Cursor.Initial); err != nil {
			add("cursor.initial: want an RFC 3339 time such as 2024-01-01T00:00:00Z, got %q", c.Cursor.Initial)
		}
	} else if strings.Contains(c.URL, "{cursor}") {
		add("url: {cursor} needs cursor.from")
	}
	if c.Cursor.Overlap < 0 {
		add("cursor.overlap: must not be negative")
	}
	switch c.Cursor.Format {
	case "rfc3339", "unix", "unix_ms":
	default:
		add("cursor.format: want rfc3339, unix or unix_ms, got %q", c.Cursor.Format)
	}
	p := c.Pagination
	switch p.Type {
	case "none", "link":
	case "token":
		if _, err := compilePath(p.TokenPath); err != nil {
			add("pagination.token_path: %v", err)
		}
		if p.TokenParam == "" {
			add("pagination.token_param: required with type token (the query parameter that takes the token)")
		}
	case "offset":
		if p.OffsetParam == "" || p.LimitParam == "" {
			add("pagination: offset needs offset_param and limit_param")
		}
		if p.Limit < 1 {
			add("pagination.limit: want at least 1, got %d", p.Limit)
		}
	default:
		add("pagination.type: want none, link, token or offset, got %q", p.Type)
	}
	a := c.Auth
	switch a.Type {
	case "none":
	case "bearer":
		if a.Token == "" {
			add("auth.token: required with type bearer (write it as ${VAR} or ${file:/path})")
		}
	case "basic":
		if a.Username == "" {
			add("auth.username: required with type basic")
		}
	case "api_key":
		if a.Header == "" || a.Key == "" {
			add("auth: api_key needs header and key")
		}
	case "oauth2":
		if tu, err := url.Parse(a.TokenURL); err != nil || (tu.Scheme != "http" && tu.Scheme != "https") || tu.Host == "" {
			add("auth.token_url: want the http(s) URL of the token endpoint, got %q", a.TokenURL)
		}
		if a.ClientID == "" || a.ClientSecret == "" {
			add("auth: oauth2 needs client_id and client_secret")
		}
	default:
		add("auth.type: want none, bearer, basic, api_key or oauth2, got %q", a.Type)
	}
	if c.MaxPages < 1 {
		add("max_pages: want at least 1, got %d", c.MaxPages)
	}
	if c.RequestTimeout <= 0 {
		add("request_timeout: must be positive")
	}
	if c.MaxRetries < 0 {
		add("max_retries: must not be negative")
	}
	if c.RetryBackoff <= 0 {
		add("retry_backoff: must be positive")
	}
	if c.MaxRetryWait <= 0 {
		add("max_retry_wait: must be positive")
	}
	return errors.Join(errs...)
}
