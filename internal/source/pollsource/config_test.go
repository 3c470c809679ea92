package pollsource

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func validConfig() *Config {
	c := NewConfig()
	c.URL = "https://example.okta.com/api/v1/logs?since={cursor}"
	c.IDPath = "$.uuid"
	c.Cursor.From = "$.published"
	c.Cursor.Initial = "2024-01-01T00:00:00Z"
	c.Pagination.Type = "link"
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"okta", func(*Config) {}, ""},
		{"no url", func(c *Config) { c.URL = "" }, "url: required"},
		{"ftp", func(c *Config) { c.URL = "ftp://x/y" }, "url: want an http(s) URL"},
		{"credentials in url", func(c *Config) { c.URL = "https://u:p@x/y" }, "credentials do not belong"},
		{"cursor placeholder without cursor", func(c *Config) { c.Cursor.From = "" }, "{cursor} needs cursor.from"},
		{"cursor without id", func(c *Config) { c.IDPath = "" }, ""},
		{"bad initial", func(c *Config) { c.Cursor.Initial = "yesterday" }, "cursor.initial"},
		{"bad records path", func(c *Config) { c.Records = "items" }, "records: want a JSON path"},
		{"filter path", func(c *Config) { c.Records = "$.items[?(@.a)]" }, "records: unsupported syntax"},
		{"short interval", func(c *Config) { c.Interval = time.Millisecond }, "interval"},
		{"jitter", func(c *Config) { c.Jitter = 0.9 }, "jitter"},
		{"token without param", func(c *Config) { c.Pagination = Pagination{Type: "token", TokenPath: "$.next"} }, "pagination.token_param"},
		{"offset without params", func(c *Config) { c.Pagination = Pagination{Type: "offset", Limit: 10} }, "offset_param and limit_param"},
		{"unknown paging", func(c *Config) { c.Pagination.Type = "cursor" }, "pagination.type"},
		{"bearer without token", func(c *Config) { c.Auth.Type = "bearer" }, "auth.token: required"},
		{"oauth2 without url", func(c *Config) { c.Auth = Auth{Type: "oauth2", ClientID: "a", ClientSecret: "b"} }, "auth.token_url"},
		{"oauth2", func(c *Config) {
			c.Auth = Auth{Type: "oauth2", TokenURL: "https://login.example.com/token", ClientID: "a", ClientSecret: "b"}
		}, ""},
		{"cursor format", func(c *Config) { c.Cursor.Format = "iso" }, "cursor.format"},
		{"max pages", func(c *Config) { c.MaxPages = 0 }, "max_pages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("want an error with %q, got %v", tt.want, err)
			}
		})
	}
}

func TestPath(t *testing.T) {
	doc := json.RawMessage(`{"data":{"items":[{"id":1,"t":"a"},{"id":2}],"next":"tok"},"list":[[1,2],[3]],"n":null}`)
	tests := []struct {
		path, records, scalar string
	}{
		{"$", `[{"data":{"items":[{"id":1,"t":"a"},{"id":2}],"next":"tok"},"list":[[1,2],[3]],"n":null}]`, ""},
		{"$.data.items", `[{"id":1,"t":"a"},{"id":2}]`, ""},
		{"$.data.items[*]", `[{"id":1,"t":"a"},{"id":2}]`, ""},
		{"$.data.items[*].id", `[1,2]`, "1"},
		{"$.data.next", `["tok"]`, "tok"},
		{"$.list[*]", `[1,2,3]`, ""},
		{"$.missing.x", `null`, ""},
		{"$.n", `null`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p, err := compilePath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := p.records(doc)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(recs)
			if string(got) != tt.records {
				t.Errorf("records: got %s, want %s", got, tt.records)
			}
			if tt.scalar != "" {
				if s, _ := p.scalar(doc); s != tt.scalar {
					t.Errorf("scalar: got %q, want %q", s, tt.scalar)
				}
			}
		})
	}
	for _, bad := range []string{"", "items", "$.", "$..a", "$[0]", "$.a[1]"} {
		if _, err := compilePath(bad); err == nil {
			t.Errorf("compilePath(%q): want an error", bad)
		}
	}
}

func TestLinkNext(t *testing.T) {
	tests := []struct {
		name string
		give []string
		want string
	}{
		{"okta", []string{`<https://x/api/v1/logs?limit=2>; rel="self", <https://x/api/v1/logs?after=abc&limit=2>; rel="next"`}, "https://x/api/v1/logs?after=abc&limit=2"},
		{"github", []string{`<https://api.github.com/orgs/o/audit-log?after=MS4&per_page=100>; rel="next", <https://api.github.com/orgs/o/audit-log?before=MS3>; rel="prev"`}, "https://api.github.com/orgs/o/audit-log?after=MS4&per_page=100"},
		{"two headers", []string{`<a>; rel="self"`, `<b>; rel=next`}, "b"},
		{"several rels", []string{`<c>; rel="last next"`}, "c"},
		{"none", []string{`<a>; rel="prev"`}, ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := linkNext(tt.give); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRetryWait(t *testing.T) {
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name string
		give map[string]string
		want time.Duration
	}{
		{"retry-after seconds", map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{"retry-after date", map[string]string{"Retry-After": now.Add(30 * time.Second).UTC().Format(http.TimeFormat)}, 30 * time.Second},
		{"github reset", map[string]string{"X-RateLimit-Reset": "1700000060"}, time.Minute},
		{"okta reset", map[string]string{"X-Rate-Limit-Reset": "1700000005"}, 5 * time.Second},
		{"past reset", map[string]string{"X-Rate-Limit-Reset": "1699999990"}, 100 * time.Millisecond},
		{"nothing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.give {
				h.Set(k, v)
			}
			if got := retryWait(h, now); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
