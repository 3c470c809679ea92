// Package slacksink is the `slack` sink: each alert (event.kind: alert, dataset
// vigil.alert) posted to a Slack incoming webhook as one message with a plain
// `text` and `blocks` — severity, rule, author, the alert's key fields, a link
// built from link_template — at most rate_limit messages per second (Slack allows
// about one per second per webhook).
//
// Slack's answers follow its incoming-webhook contract: 200 "ok" is delivery; 429
// (with Retry-After), 408 and 5xx are retried with backoff; any other 4xx
// (400 invalid_payload, 403 action_prohibited, 404 no_service, 410
// channel_is_archived...) is permanent and the alert goes to the dead-letter
// stream with Slack's answer as the reason. Slack has no idempotency key: an alert
// delivered again (after a crash, or a retry whose answer was lost) is posted
// again, with the same event.id shown in its context line.
package slacksink

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/sink/alert"
)

// Config is the slack sink's config.
type Config struct {
	// WebhookURL is the incoming webhook's URL
	// ("https://hooks.slack.com/services/T.../B.../..."); it holds the webhook's
	// token, so it is a secret: use ${SLACK_WEBHOOK_URL}.
	WebhookURL string `yaml:"webhook_url" secret:"true"`
	// LinkTemplate, when set, adds a button linking to the alert, such as a search
	// for its event.id. {{field.path}} placeholders are replaced by the alert's
	// values, URL-escaped (empty when absent).
	LinkTemplate string `yaml:"link_template"`
	// Fields are the alert's fields shown in the message when present.
	Fields []string `yaml:"fields"`
	// RateLimit of messages, as "N/s", "N/m" or "N/h".
	RateLimit string `yaml:"rate_limit"`
	// Burst is the number of messages sent at once before rate_limit applies.
	Burst int `yaml:"burst"`
	// Suppress holds back repeats of an alert within a window.
	Suppress alert.Suppress `yaml:"suppress"`
	// Retry is the backoff between attempts after transient failures.
	Retry Retry `yaml:"retry"`
	// RequestTimeout bounds one HTTP request, response included.
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// Retry is an exponential backoff with jitter.
type Retry struct {
	// Initial wait after the first failure; it doubles with each attempt.
	Initial time.Duration `yaml:"initial"`
	// Max wait between attempts, also the most a Retry-After is honoured.
	Max time.Duration `yaml:"max"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		Fields:         []string{"source.ip", "destination.ip", "user.name", "host.name", "url.domain", "process.name"},
		RateLimit:      "1/s",
		Burst:          1,
		Suppress:       alert.Suppress{MaxKeys: 10000},
		Retry:          Retry{Initial: time.Second, Max: time.Minute},
		RequestTimeout: 30 * time.Second,
	}
}

// Validate implements config.Component. Errors never echo the webhook URL.
func (c *Config) Validate() error {
	var errs []error
	if c.WebhookURL == "" {
		errs = append(errs, errors.New("webhook_url: required (use ${SLACK_WEBHOOK_URL})"))
	} else if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, errors.New("webhook_url: want an https URL such as https://hooks.slack.com/services/... (value not shown: it is a secret)"))
	}
	if c.LinkTemplate != "" {
		if err := checkTemplate(c.LinkTemplate); err != nil {
			errs = append(errs, fmt.Errorf("link_template: %w", err))
		}
	}
	for i, f := range c.Fields {
		if f == "" || strings.ContainsAny(f, " \t\r\n") {
			errs = append(errs, fmt.Errorf("fields[%d]: %q is not a field path", i, f))
		}
	}
	if _, err := alert.ParseRate(c.RateLimit); err != nil {
		errs = append(errs, fmt.Errorf("rate_limit: %w", err))
	}
	if c.Burst < 1 {
		errs = append(errs, errors.New("burst: must be at least 1"))
	}
	if err := c.Suppress.Validate("suppress"); err != nil {
		errs = append(errs, err)
	}
	if c.Retry.Initial < time.Millisecond {
		errs = append(errs, errors.New("retry.initial: must be at least 1ms"))
	}
	if c.Retry.Max < c.Retry.Initial {
		errs = append(errs, errors.New("retry.max: must be at least retry.initial"))
	}
	if c.RequestTimeout < 100*time.Millisecond {
		errs = append(errs, errors.New("request_timeout: must be at least 100ms"))
	}
	return errors.Join(errs...)
}

// checkTemplate checks that placeholders are closed and name fields, and that the
// template with every placeholder empty is an http(s) URL.
func checkTemplate(t string) error {
	out, err := expand(t, func(string) (string, bool) { return "x", true })
	if err != nil {
		return err
	}
	u, err := url.Parse(out)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("want an http or https URL, got %q", t)
	}
	return nil
}

// expand replaces the {{field.path}} placeholders of t by the URL-escaped values
// of field (empty when absent).
func expand(t string, field func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(t, "{{")
		if i < 0 {
			b.WriteString(t)
			return b.String(), nil
		}
		b.WriteString(t[:i])
		t = t[i+2:]
		j := strings.Index(t, "}}")
		if j < 0 {
			return "", errors.New("a {{ without its }}")
		}
		name := strings.TrimSpace(t[:j])
		if name == "" || strings.ContainsAny(name, " {}") {
			return "", fmt.Errorf("{{%s}} does not name a field", t[:j])
		}
		v, _ := field(name)
		// Query-escaped with %20 for spaces: the value is safe in a query string,
		// a path segment or a fragment (Kibana's rison) alike.
		b.WriteString(strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		t = t[j+2:]
	}
}
