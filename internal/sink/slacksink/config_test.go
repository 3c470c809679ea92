package slacksink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/sink/slacksink"
)

const testWebhook = "https://hooks.slack.example/services/T000/B000/s3cr3tT0ken"

func TestConfigFile(t *testing.T) {
	t.Setenv("VIGIL_TEST_SLACK_WEBHOOK_URL", testWebhook)
	cfg, err := config.Load("testdata/config_slack.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Sinks[0].Settings.(*slacksink.Config)
	if c.WebhookURL != testWebhook || c.RateLimit != "2/s" || c.Burst != 3 ||
		c.Suppress.Window != 10*time.Minute || strings.Join(c.Suppress.Key, ",") != "rule.id,source.ip" ||
		c.Suppress.MaxKeys != 10000 || !strings.Contains(c.LinkTemplate, "{{event.id}}") {
		t.Errorf("slack sink: %+v", c)
	}
	red := config.Redacted(cfg).Sinks[0].Settings.(*slacksink.Config)
	if red.WebhookURL != "<redacted>" {
		t.Errorf("webhook_url not redacted: %q", red.WebhookURL)
	}
}

func TestConfigFileProblems(t *testing.T) {
	// A webhook URL that is not a URL: the problem must not echo it.
	t.Setenv("VIGIL_TEST_SLACK_WEBHOOK_URL", "hooks.slack.example/services/s3cr3tT0ken")
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/config_slack_typo.yaml", []string{
			`testdata/config_slack_typo.yaml:10:5: sinks.chat: unknown field "rate_limt"`,
		}},
		{"testdata/config_slack_invalid.yaml", []string{
			`sinks.chat.webhook_url: want an https URL`,
			`sinks.chat.link_template: a {{ without its }}`,
			`sinks.chat.rate_limit: want a rate such as 1/s`,
			`sinks.chat.suppress.key: required with a window`,
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
				t.Errorf("a problem echoes the webhook URL:\n%v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *slacksink.Config)
		want   string // substring of the error; "" for valid
	}{
		{"defaults with a webhook", func(*slacksink.Config) {}, ""},
		{"no webhook", func(c *slacksink.Config) { c.WebhookURL = "" }, "webhook_url: required"},
		{"rate per minute", func(c *slacksink.Config) { c.RateLimit = "30/m" }, ""},
		{"rate unit", func(c *slacksink.Config) { c.RateLimit = "1/d" }, "rate_limit: "},
		{"burst", func(c *slacksink.Config) { c.Burst = 0 }, "burst: "},
		{"template not a url", func(c *slacksink.Config) { c.LinkTemplate = "kibana/{{event.id}}" }, "link_template: want an http"},
		{"empty placeholder", func(c *slacksink.Config) { c.LinkTemplate = "https://k/{{ }}" }, "link_template: "},
		{"suppress max keys", func(c *slacksink.Config) { c.Suppress.MaxKeys = 0 }, "suppress.max_keys: "},
		{"suppress key path", func(c *slacksink.Config) {
			c.Suppress = slacksink.NewConfig().Suppress
			c.Suppress.Window, c.Suppress.Key = time.Minute, []string{"rule..id"}
		}, "suppress.key[0]: "},
		{"retry", func(c *slacksink.Config) { c.Retry.Max = time.Microsecond }, "retry.max: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := slacksink.NewConfig()
			c.WebhookURL = testWebhook
			tt.mutate(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error echoes the webhook URL: %v", err)
			}
		})
	}
}
