package webhooksink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/sink/webhooksink"
)

const testSecret = "s3cr3t-hmac-key-0123456789"

func TestConfigFile(t *testing.T) {
	t.Setenv("VIGIL_TEST_WEBHOOK_SECRET", testSecret)
	cfg, err := config.Load("testdata/config_webhook.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Sinks[0].Settings.(*webhooksink.Config)
	if c.URL != "https://soar.example/hooks/vigil" || c.Secret != testSecret || c.Batch != 20 ||
		c.RateLimit != "5/s" || c.Suppress.Window != 10*time.Minute || len(c.Suppress.Key) != 2 ||
		c.MaxWait != time.Second {
		t.Errorf("webhook sink: %+v", c)
	}
	red := config.Redacted(cfg).Sinks[0].Settings.(*webhooksink.Config)
	if red.Secret != "<redacted>" {
		t.Errorf("secret not redacted: %q", red.Secret)
	}
}

func TestConfigFileProblems(t *testing.T) {
	t.Setenv("VIGIL_TEST_WEBHOOK_SECRET", "s3cr3t") // too short: named, never shown
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/config_webhook_typo.yaml", []string{
			`testdata/config_webhook_typo.yaml:11:5: sinks.soar: unknown field "suppres"`,
		}},
		{"testdata/config_webhook_invalid.yaml", []string{
			`sinks.soar.url: want an http or https URL`,
			`sinks.soar.secret: must be at least 16 characters`,
			`sinks.soar.batch: want 1 to 1000`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := config.Load(tt.file, components.Builtin())
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing problem %q in:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("a problem echoes the secret:\n%v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *webhooksink.Config)
		want   string
	}{
		{"defaults with url and secret", func(*webhooksink.Config) {}, ""},
		{"no secret", func(c *webhooksink.Config) { c.Secret = "" }, "secret: required"},
		{"credentials in url", func(c *webhooksink.Config) { c.URL = "https://u:pw@soar.example/x" }, "url: credentials"},
		{"unlimited", func(c *webhooksink.Config) { c.RateLimit = "unlimited" }, ""},
		{"in flight", func(c *webhooksink.Config) { c.MaxInFlight = 0 }, "max_in_flight: "},
		{"tls pair", func(c *webhooksink.Config) { c.TLS.CertFile = "c.pem" }, "tls: set both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := webhooksink.NewConfig()
			c.URL, c.Secret = "https://soar.example/hooks/vigil", testSecret
			tt.mutate(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), ":pw@")) {
				t.Errorf("error echoes a secret: %v", err)
			}
		})
	}
}
