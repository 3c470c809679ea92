// Package httpsource is the `http` source: POST /v1/events/{name} with a JSON object,
// a JSON array of objects, NDJSON or text lines, answered 200 only once every record
// of the request is stored in the intake stream.
package httpsource

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
)

// Config is the http source's config.
type Config struct {
	// Address to listen on, host:port.
	Address string `yaml:"address"`
	// Tokens are the accepted bearer tokens (Authorization: Bearer <token>).
	Tokens []string `yaml:"tokens" secret:"true"`
	// HMAC, when set, requires requests signed with a shared secret (GitHub- or
	// Slack-style webhooks). With tokens set too, a request needs both.
	HMAC *HMAC `yaml:"hmac"`
	// RateLimit, when set, answers 429 with Retry-After to a client (token, or IP
	// address without tokens) over its rate.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// AllowUnauthenticated permits listening on a non-loopback address without
	// tokens or hmac.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// MaxBodyBytes limits a request body, before and after gzip decoding.
	MaxBodyBytes config.ByteSize `yaml:"max_body_bytes"`
	// OnMalformed is "reject" (400, nothing of the request stored) or "dlq" (bad
	// records to the dead-letter stream, the rest stored).
	OnMalformed string `yaml:"on_malformed"`
	// PathDataset makes any {name} in the path the events' dataset; otherwise {name}
	// must be the source's name.
	PathDataset bool `yaml:"path_dataset"`
	// TLS serves HTTPS when cert_file and key_file are set.
	TLS config.ServerTLS `yaml:"tls"`
	// ReadTimeout bounds reading one request.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// RetryAfter is the Retry-After answered with 429 and 503.
	RetryAfter time.Duration `yaml:"retry_after"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		Address:      "127.0.0.1:8080",
		MaxBodyBytes: 10 << 20,
		OnMalformed:  "reject",
		ReadTimeout:  30 * time.Second,
		RetryAfter:   5 * time.Second,
	}
}

// DefaultFormat implements config.FormatDefaulter.
func (c *Config) DefaultFormat() string { return "json" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	host, _, err := net.SplitHostPort(c.Address)
	if err != nil {
		errs = append(errs, fmt.Errorf("address: want host:port, got %q", c.Address))
	} else if len(c.Tokens) == 0 && c.HMAC == nil && !c.AllowUnauthenticated && !config.IsLoopback(host) {
		errs = append(errs, fmt.Errorf("address: %s is reachable from other machines but neither tokens nor hmac are set; set one, or allow_unauthenticated: true if something in front authenticates", c.Address))
	}
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
	if c.MaxBodyBytes < 1<<10 {
		errs = append(errs, errors.New("max_body_bytes: must be at least 1KiB"))
	}
	switch c.OnMalformed {
	case "reject", "dlq":
	default:
		errs = append(errs, fmt.Errorf("on_malformed: want reject or dlq, got %q", c.OnMalformed))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, errors.New("read_timeout: must be positive"))
	}
	if c.RetryAfter < time.Second {
		errs = append(errs, errors.New("retry_after: must be at least 1s"))
	}
	return errors.Join(errs...)
}
