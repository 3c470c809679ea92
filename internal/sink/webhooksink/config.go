// Package webhooksink is the `webhook` sink: alerts POSTed as JSON to an HTTP
// endpoint (a SOAR, a ticketing bridge, a function), each request signed with
// HMAC-SHA256 so the receiver can tell it came from Vigil and was not replayed.
//
// Body: with batch: 1 (the default) the alert document itself, as the pipeline
// stored it; with batch > 1 a JSON array of up to batch alerts.
//
// Headers:
//
//	Content-Type:       application/json
//	X-Vigil-Timestamp:  Unix seconds when the request was signed (each attempt anew)
//	X-Vigil-Signature:  sha256=<hex of HMAC-SHA256(secret, timestamp + "." + body)>
//	X-Vigil-Alert-Id:   the event.id of the alert (with batch > 1, the ids of the
//	                    alerts, comma-separated, in body order)
//
// A receiver recomputes the HMAC over the timestamp, a ".", and the raw body bytes,
// compares it in constant time, and refuses timestamps older than its tolerance
// (five minutes, say). event.id is deterministic: an alert delivered twice (after a
// crash, or a retry whose answer was lost) carries the same id, which is how the
// receiver deduplicates.
//
// Answers: 2xx is delivery; 429 (honouring Retry-After), 408, 5xx and network
// errors are retried with backoff; other 4xx are permanent and the alert goes to
// the dead-letter stream (a batch is halved first, so one bad alert does not take
// the others with it).
package webhooksink

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/sink/alert"
)

// Config is the webhook sink's config.
type Config struct {
	// URL the alerts are POSTed to.
	URL string `yaml:"url"`
	// Secret is the HMAC-SHA256 key of the X-Vigil-Signature header; use
	// ${WEBHOOK_SECRET}, at least 16 characters.
	Secret string `yaml:"secret" secret:"true"`
	// Batch is the most alerts per request: 1 posts each alert as a JSON object,
	// more posts a JSON array.
	Batch int `yaml:"batch"`
	// MaxWait after the first alert of a request before it is sent less than full
	// (batch > 1 only).
	MaxWait time.Duration `yaml:"max_wait"`
	// RateLimit of requests, as "N/s", "N/m" or "N/h", or unlimited.
	RateLimit string `yaml:"rate_limit"`
	// Burst is the number of requests sent at once before rate_limit applies.
	Burst int `yaml:"burst"`
	// MaxInFlight is the number of requests under way at once.
	MaxInFlight int `yaml:"max_in_flight"`
	// Suppress holds back repeats of an alert within a window.
	Suppress alert.Suppress `yaml:"suppress"`
	// Retry is the backoff between attempts after transient failures.
	Retry Retry `yaml:"retry"`
	// TLS for https URLs.
	TLS config.ClientTLS `yaml:"tls"`
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
		Batch:          1,
		MaxWait:        time.Second,
		RateLimit:      "10/s",
		Burst:          10,
		MaxInFlight:    2,
		Suppress:       alert.Suppress{MaxKeys: 10000},
		Retry:          Retry{Initial: time.Second, Max: time.Minute},
		RequestTimeout: 30 * time.Second,
	}
}

// Validate implements config.Component. Errors never echo the secret.
func (c *Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("url: required"))
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		errs = append(errs, errors.New("url: want an http or https URL such as https://soar.example/hooks/vigil"))
	case u.User != nil:
		errs = append(errs, fmt.Errorf("url: credentials in %q: authenticate with the signature (secret)", u.Redacted()))
	}
	if c.Secret == "" {
		errs = append(errs, errors.New("secret: required (the HMAC key; use ${WEBHOOK_SECRET})"))
	} else if len(c.Secret) < 16 {
		errs = append(errs, errors.New("secret: must be at least 16 characters"))
	}
	if c.Batch < 1 || c.Batch > 1000 {
		errs = append(errs, fmt.Errorf("batch: want 1 to 1000, got %d", c.Batch))
	}
	if c.MaxWait < time.Millisecond {
		errs = append(errs, errors.New("max_wait: must be at least 1ms"))
	}
	if _, err := alert.ParseRate(c.RateLimit); err != nil {
		errs = append(errs, fmt.Errorf("rate_limit: %w", err))
	}
	if c.Burst < 1 {
		errs = append(errs, errors.New("burst: must be at least 1"))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 64 {
		errs = append(errs, fmt.Errorf("max_in_flight: want 1 to 64, got %d", c.MaxInFlight))
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
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: set both cert_file and key_file"))
	}
	return errors.Join(errs...)
}
