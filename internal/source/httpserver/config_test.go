package httpserver

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
)

func TestConfigValidate(t *testing.T) {
	noTokens := Auth{Missing: "no tokens are set; set tokens"}
	tests := []struct {
		name string
		mod  func(*BoundedConfig)
		auth Auth
		want string // prefix of the error; "" for none
	}{
		{"defaults", func(*BoundedConfig) {}, noTokens, ""},
		{"bad address", func(c *BoundedConfig) { c.Address = "8080" }, noTokens, `address: want host:port, got "8080"`},
		{"public without auth", func(c *BoundedConfig) { c.Address = "0.0.0.0:8080" }, noTokens,
			"address: 0.0.0.0:8080 is reachable from other machines but no tokens are set; set tokens, or allow_unauthenticated: true if something in front authenticates"},
		{"public with auth", func(c *BoundedConfig) { c.Address = "0.0.0.0:8080" }, Auth{Configured: true}, ""},
		{"public, allowed", func(c *BoundedConfig) { c.Address = "[::]:8080"; c.AllowUnauthenticated = true }, noTokens, ""},
		{"localhost", func(c *BoundedConfig) { c.Address = "localhost:8080" }, noTokens, ""},
		{"ipv6 loopback", func(c *BoundedConfig) { c.Address = "[::1]:8080" }, noTokens, ""},
		{"tiny body", func(c *BoundedConfig) { c.MaxBodyBytes = 1023 }, noTokens, "max_body_bytes: must be at least 1KiB"},
		{"half tls", func(c *BoundedConfig) { c.TLS.KeyFile = "k" }, noTokens, "tls: set both cert_file and key_file"},
		{"client ca alone", func(c *BoundedConfig) { c.TLS.ClientCAFile = "ca" }, noTokens, "tls.client_ca_file: needs cert_file and key_file"},
		{"tls", func(c *BoundedConfig) { c.TLS = config.ServerTLS{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"} }, noTokens, ""},
		{"read timeout", func(c *BoundedConfig) { c.ReadTimeout = 0 }, noTokens, "read_timeout: must be positive"},
		{"retry after", func(c *BoundedConfig) { c.RetryAfter = 999 * time.Millisecond }, noTokens, "retry_after: must be at least 1s"},
		{"no slots", func(c *BoundedConfig) { c.MaxInFlight = 0 }, noTokens, "max_in_flight: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewBoundedConfig("127.0.0.1:8080", 4)
			tt.mod(&c)
			err := c.Validate(tt.auth)
			if tt.want == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := BoundedConfig{Config: Config{Address: "0.0.0.0:1", TLS: config.ServerTLS{CertFile: "c"}}}
	err := c.Validate(Auth{Missing: "no keys are set; set keys"})
	var got []string
	for _, line := range strings.Split(err.Error(), "\n") {
		key, _, _ := strings.Cut(line, ":")
		got = append(got, key)
	}
	want := "address max_body_bytes tls read_timeout retry_after max_in_flight"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestConfigScheme(t *testing.T) {
	c := NewConfig("127.0.0.1:0")
	if c.Scheme() != "http" {
		t.Errorf("without tls: %s", c.Scheme())
	}
	c.TLS = config.ServerTLS{CertFile: "c", KeyFile: "k"}
	if c.Scheme() != "https" {
		t.Errorf("with tls: %s", c.Scheme())
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		give time.Duration
		want string
	}{
		{time.Second, "1"},
		{5 * time.Second, "5"},
		{1499 * time.Millisecond, "1"},
		{1500 * time.Millisecond, "2"},
		{2 * time.Minute, "120"},
	}
	for _, tt := range tests {
		c := Config{RetryAfter: tt.give}
		if got := c.RetryAfterSeconds(); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.give, got, tt.want)
		}
	}
}
