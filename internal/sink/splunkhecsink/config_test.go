package splunkhecsink

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // substring of the error; "" for valid
	}{
		{"defaults with a token", func(*Config) {}, ""},
		{"no token", func(c *Config) { c.Token = "" }, "token: required"},
		{"bad url", func(c *Config) { c.URL = "splunk:8088" }, "url: "},
		{"credentials in url", func(c *Config) { c.URL = "https://u:p@splunk:8088" }, "url: credentials"},
		{"full endpoint url", func(c *Config) { c.URL = "https://splunk:8088/services/collector/event" }, ""},
		{"compression", func(c *Config) { c.Compression = "zstd" }, "compression: want gzip or none"},
		{"in flight", func(c *Config) { c.MaxInFlight = 0 }, "max_in_flight: "},
		{"ack timeout", func(c *Config) { c.Ack.Timeout = time.Millisecond }, "ack.timeout: "},
		{"max pending", func(c *Config) { c.Ack.MaxPending = 0 }, "ack.max_pending: "},
		{"retry", func(c *Config) { c.Retry.Max = time.Millisecond }, "retry.max: "},
		{"glob", func(c *Config) { c.Datasets = map[string]Metadata{"aws.[": {}} }, "datasets.aws.[: not a valid glob"},
		{"newline", func(c *Config) { c.Datasets = map[string]Metadata{"x": {Index: "a\nb"}} }, "datasets.x.index: "},
		{"tls pair", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls: set both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			c.Token = "t"
			tt.mutate(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "p@") {
				t.Errorf("error echoes a secret: %v", err)
			}
		})
	}
}

func TestBaseURL(t *testing.T) {
	for give, want := range map[string]string{
		"https://splunk:8088":                              "https://splunk:8088",
		"https://splunk:8088/":                             "https://splunk:8088",
		"https://splunk:8088/services/collector/event":     "https://splunk:8088",
		"https://splunk:8088/services/collector":           "https://splunk:8088",
		"https://lb.example/splunk/services/collector/":    "https://lb.example/splunk",
		"https://splunk:8088/services/collector/event/1.0": "https://splunk:8088",
	} {
		u, err := baseURL(give)
		if err != nil || u.String() != want {
			t.Errorf("baseURL(%q) = %v, %v; want %s", give, u, err, want)
		}
	}
}

func TestResolveMetadata(t *testing.T) {
	c := NewConfig()
	c.Datasets = map[string]Metadata{
		"aws.cloudtrail": {Sourcetype: "aws:cloudtrail"},
		"aws.*":          {Sourcetype: "aws:any", Index: "aws"},
		"aws.cloud*":     {Index: "cloud"},
		"default":        {Index: "main", Host: "vigil-1"},
	}
	tests := []struct {
		give string
		want Metadata
	}{
		{"aws.cloudtrail", Metadata{Sourcetype: "aws:cloudtrail", Index: "main", Source: "vigil:aws.cloudtrail", Host: "vigil-1"}},
		{"aws.cloudfront", Metadata{Sourcetype: "_json", Index: "cloud", Source: "vigil:aws.cloudfront", Host: "vigil-1"}},
		{"aws.vpcflow", Metadata{Sourcetype: "aws:any", Index: "aws", Source: "vigil:aws.vpcflow", Host: "vigil-1"}},
		{"syslog", Metadata{Sourcetype: "_json", Index: "main", Source: "vigil:syslog", Host: "vigil-1"}},
	}
	for _, tt := range tests {
		if got := c.resolve(tt.give); got != tt.want {
			t.Errorf("resolve(%q) = %+v, want %+v", tt.give, got, tt.want)
		}
	}
}

func TestAppendEpoch(t *testing.T) {
	tests := []struct{ give, want string }{
		{`"2026-01-02T03:04:05Z"`, "1767323045"},
		{`"2026-01-02T03:04:05.000Z"`, "1767323045"},
		{`"2026-01-02T03:04:05.120Z"`, "1767323045.12"},
		{`"2026-01-02T03:04:05.123456789Z"`, "1767323045.123456"},
		{`"2026-01-02T05:04:05.25+02:00"`, "1767323045.25"},
		{`"1970-01-01T00:00:00.000001Z"`, "0.000001"},
		{`"not a time"`, ""},
		{`"2026-13-02T03:04:05Z"`, ""},
		{`"2026-01-02T03:04:05.Z"`, ""},
		{`12345`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		got, ok := appendEpoch(nil, []byte(tt.give))
		if string(got) != tt.want || ok != (tt.want != "") {
			t.Errorf("appendEpoch(%s) = %q, %v; want %q", tt.give, got, ok, tt.want)
		}
	}
}

func TestNewChannelIsUUID(t *testing.T) {
	a, b := newChannel(), newChannel()
	if !uuidRE.MatchString(a) || a == b {
		t.Errorf("channels %q %q", a, b)
	}
}
