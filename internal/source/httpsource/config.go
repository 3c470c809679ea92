// Package httpsource is the `http` source: POST /v1/events/{name} with a JSON object,
// a JSON array of objects, NDJSON or text lines, answered 200 only once every record
// of the request is stored in the intake stream.
package httpsource

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-sec/vigil/internal/source/httpserver"
)

// Config is the http source's config.
type Config struct {
	httpserver.Config `yaml:",inline"`
	// Tokens are the accepted bearer tokens (Authorization: Bearer <token>).
	Tokens []string `yaml:"tokens" secret:"true"`
	// HMAC, when set, requires requests signed with a shared secret (GitHub- or
	// Slack-style webhooks). With tokens set too, a request needs both.
	HMAC *HMAC `yaml:"hmac"`
	// RateLimit, when set, answers 429 with Retry-After to a client (token, or IP
	// address without tokens) over its rate.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// OnMalformed is "reject" (400, nothing of the request stored) or "dlq" (bad
	// records to the dead-letter stream, the rest stored).
	OnMalformed string `yaml:"on_malformed"`
	// PathDataset makes any {name} in the path the events' dataset; otherwise {name}
	// must be the source's name.
	PathDataset bool `yaml:"path_dataset"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{Config: httpserver.NewConfig("127.0.0.1:8080"), OnMalformed: "reject"}
}

// DefaultFormat implements config.FormatDefaulter.
func (c *Config) DefaultFormat() string { return "json" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	errs := []error{c.Config.Validate(httpserver.Auth{
		Configured: len(c.Tokens) > 0 || c.HMAC != nil,
		Missing:    "neither tokens nor hmac are set; set one",
	})}
	if c.HMAC != nil {
		if err := c.HMAC.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RateLimit != nil {
		if err := c.RateLimit.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	for i, t := range c.Tokens {
		if strings.TrimSpace(t) == "" {
			errs = append(errs, fmt.Errorf("tokens[%d]: empty token", i))
		}
	}
	switch c.OnMalformed {
	case "reject", "dlq":
	default:
		errs = append(errs, fmt.Errorf("on_malformed: want reject or dlq, got %q", c.OnMalformed))
	}
	return errors.Join(errs...)
}
