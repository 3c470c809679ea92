package elasticsearchsink

import (
	"github.com/vigil-sec/vigil/internal/sink/docscan"

	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLookup(t *testing.T) {
	paths := []string{"event.id", "@timestamp", "event.dataset", "user.name"}
	tests := []struct {
		name string
		give string
		want []string // raw tokens; "" for absent
		ok   bool
	}{
		{"ecs", `{"@timestamp":"2026-01-02T03:04:05Z","event":{"dataset":"aws.alb","id":"abc"},"user":{"name":"al"}}`,
			[]string{`"abc"`, `"2026-01-02T03:04:05Z"`, `"aws.alb"`, `"al"`}, true},
		{"skips nested look-alikes", `{"a":{"event":{"id":"no"}},"b":["{\"event\":1}",{"x":[1,2,{"y":"}"}]}],"event":{"id":"yes"}}`,
			[]string{`"yes"`, "", "", ""}, true},
		{"escaped quotes", `{"message":"say \"event\": \\","event":{"id":"a\"b"}}`, []string{`"a\"b"`, "", "", ""}, true},
		{"scalars", `{"event":{"id":42,"dataset":true},"user":{"name":null}}`, []string{"42", "", "true", "null"}, true},
		{"value object", `{"event":{"value":"x","id":"i"}}`, []string{`"i"`, "", "", ""}, true},
		{"event not object", `{"event":"flat","user":{"name":"u"}}`, []string{"", "", "", `"u"`}, true},
		{"whitespace", "{ \"event\" : { \"id\" : \"w\" } }", []string{`"w"`, "", "", ""}, true},
		{"empty", `{}`, []string{"", "", "", ""}, true},
		{"not an object", `["event"]`, []string{"", "", "", ""}, false},
		{"truncated", `{"event":{"id":"tr`, []string{"", "", "", ""}, false},
	}
	out := make([][]byte, len(paths))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok := docscan.Lookup([]byte(tt.give), paths, out)
			if ok != tt.ok {
				t.Errorf("ok = %v", ok)
			}
			for i, w := range tt.want {
				if string(out[i]) != w {
					t.Errorf("%s = %q, want %q", paths[i], out[i], w)
				}
			}
		})
	}
}

func TestIndexTemplate(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		index   string
		doc     string
		dataset string
		want    string
		wantErr string
	}{
		{index: DefaultIndex, doc: `{"event":{"dataset":"aws.cloudtrail"}}`, want: "logs-aws.cloudtrail-2026.03.04"},
		{index: DefaultIndex, doc: `{}`, dataset: "batch.ds", want: "logs-batch.ds-2026.03.04"},
		{index: DefaultIndex, doc: `{"@timestamp":"2025-12-31T23:59:59+02:00","event":{"dataset":"X Y/Z"}}`, want: "logs-x_y_z-2025.12.31"},
		{index: "logs-{event.dataset}-default", doc: `{"event":{"dataset":"syslog"}}`, want: "logs-syslog-default"},
		{index: "sec-{cloud.account.id}-%Y.%m.%d.%H", doc: `{"cloud":{"account":{"id":123}}}`, want: "sec-123-2026.03.04.05"},
		{index: "sec-{user.name}", doc: `{}`, want: "sec-unknown"},
		{index: "fixed", doc: `{}`, want: "fixed"},
		{index: "p%%c-%Y", doc: `{}`, want: "p%c-2026"},
		{index: "Logs", wantErr: "lower case"},
		{index: "logs-{event.dataset", wantErr: "not closed"},
		{index: "logs-%Q", wantErr: "%Q"},
		{index: "_logs", wantErr: "cannot start"},
		{index: "", wantErr: "empty"},
		{index: "a b", wantErr: "cannot be in an index name"},
	}
	for _, tt := range tests {
		t.Run(tt.index, func(t *testing.T) {
			tpl, err := parseIndex(tt.index)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			paths := append([]string{"@timestamp"}, tpl.fields...)
			vals := make([][]byte, len(paths))
			docscan.Lookup([]byte(tt.doc), paths, vals)
			when := ts
			if tm, ok := parseTimestamp(vals[0]); ok {
				when = tm
			}
			if got := string(tpl.render(nil, vals[1:], when, tt.dataset)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no urls", func(c *Config) { c.URLs = nil }, "urls:"},
		{"bad scheme", func(c *Config) { c.URLs = []string{"ftp://x"} }, "urls[0]:"},
		{"op_type", func(c *Config) { c.OpType = "update" }, "op_type:"},
		{"two auths", func(c *Config) { c.Auth = Auth{APIKey: "k", BearerToken: "b"} }, "auth:"},
		{"password alone", func(c *Config) { c.Auth = Auth{Password: "p"} }, "auth.username:"},
		{"compression", func(c *Config) { c.Compression = "zstd" }, "compression:"},
		{"tls half", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls:"},
		{"max_in_flight", func(c *Config) { c.MaxInFlight = 0 }, "max_in_flight:"},
		{"retry", func(c *Config) { c.Retry.Max = time.Millisecond }, "retry.max:"},
		{"header", func(c *Config) { c.Headers = map[string]string{"Content-Encoding": "br"} }, "headers:"},
		{"batch", func(c *Config) { c.Batch.MaxEvents = 0 }, "batch.max_events:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			tt.mutate(c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Error("secret in error")
			}
		})
	}
}

// FuzzLookup: any bytes give a result or false, never a panic, and a found token is
// a slice of the input that JSON accepts when the input is valid JSON.
func FuzzLookup(f *testing.F) {
	f.Add([]byte(`{"@timestamp":"2026-01-02T03:04:05Z","event":{"dataset":"a","id":"b"}}`))
	f.Add([]byte(`{"a":[{"event":{"id":1}}],"event":{"id":"x\"y"}}`))
	f.Add([]byte(`{"event":`))
	paths := []string{"event.id", "@timestamp", "event.dataset"}
	f.Fuzz(func(t *testing.T, doc []byte) {
		out := make([][]byte, len(paths))
		if !docscan.Lookup(doc, paths, out) || !json.Valid(doc) {
			return
		}
		for i, tok := range out {
			if tok != nil && !json.Valid(tok) {
				t.Errorf("%s: token %q is not JSON", paths[i], tok)
			}
		}
	})
}
