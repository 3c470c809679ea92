package firehosesource

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/source/httpserver"
)

const (
	// SpecMaxBodyBytes is the largest request body Firehose sends: "up to a maximum
	// of 64 MiB, before compression" (HTTP endpoint delivery specification 1.0).
	SpecMaxBodyBytes = 64 << 20
	// maxAccessKeyBytes is Firehose's limit on the access key.
	maxAccessKeyBytes = 4096
	// firehoseTimeout is how long Firehose waits for an answer before it gives up on
	// a request and retries it.
	firehoseTimeout = 3 * time.Minute
)

// Config is the firehose source's config.
type Config struct {
	// Firehose only delivers to https on port 443, so in production the address sits
	// behind TLS (tls, or a load balancer). The default max_body_bytes takes the
	// largest body Firehose sends (64 MiB) plus room to spare. Mind that Firehose
	// treats a 413 answer as permanent and drops the batch without copying it to its
	// S3 error bucket: never set max_body_bytes below the buffer size configured on
	// the Firehose stream. Each request in flight may hold about three times its
	// body in memory.
	httpserver.BoundedConfig `yaml:",inline"`
	// AccessKeys are the accepted values of X-Amz-Firehose-Access-Key (the "access
	// key" configured on the Firehose stream). Several allow rotation.
	AccessKeys []string `yaml:"access_keys" secret:"true"`
	// Path is the URL path Firehose posts to: the path of the endpoint URL configured
	// on the stream. Only this exact path is served; others get 404.
	Path string `yaml:"path"`
	// ResponseTimeout bounds a request from its arrival to its answer, so that
	// Firehose gets an error answer before its own 3-minute timeout.
	ResponseTimeout time.Duration `yaml:"response_timeout"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	srv := httpserver.NewBoundedConfig("127.0.0.1:8443", 8)
	srv.MaxBodyBytes = SpecMaxBodyBytes + 1<<20
	srv.ReadTimeout = 2 * time.Minute
	return &Config{BoundedConfig: srv, Path: "/", ResponseTimeout: 150 * time.Second}
}

// DefaultFormat implements config.FormatDefaulter: Firehose's common use in the
// deployments Vigil replaces is carrying CloudWatch Logs subscriptions.
func (c *Config) DefaultFormat() string { return "cloudwatch_logs" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	errs := []error{c.BoundedConfig.Validate(httpserver.Auth{
		Configured: len(c.AccessKeys) > 0,
		Missing:    "no access_keys are set; set access_keys to the Firehose stream's access key",
	})}
	for i, k := range c.AccessKeys {
		switch {
		case strings.TrimSpace(k) == "":
			errs = append(errs, fmt.Errorf("access_keys[%d]: empty key", i))
		case len(k) > maxAccessKeyBytes:
			errs = append(errs, fmt.Errorf("access_keys[%d]: %d bytes, but Firehose sends at most %d", i, len(k), maxAccessKeyBytes))
		}
	}
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: must start with '/', got %q", c.Path))
	}
	if c.ResponseTimeout <= 0 || c.ResponseTimeout >= firehoseTimeout {
		errs = append(errs, fmt.Errorf("response_timeout: must be positive and below Firehose's %s timeout, got %s", firehoseTimeout, c.ResponseTimeout))
	}
	return errors.Join(errs...)
}
