package firehosesource

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
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
	// Address to listen on, host:port. Firehose only delivers to https on port 443,
	// so in production this sits behind TLS (tls below, or a load balancer).
	Address string `yaml:"address"`
	// AccessKeys are the accepted values of X-Amz-Firehose-Access-Key (the "access
	// key" configured on the Firehose stream). Several allow rotation.
	AccessKeys []string `yaml:"access_keys" secret:"true"`
	// AllowUnauthenticated permits listening on a non-loopback address without keys.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// Path is the URL path Firehose posts to: the path of the endpoint URL configured
	// on the stream. Only this exact path is served; others get 404.
	Path string `yaml:"path"`
	// MaxBodyBytes limits a request body, before and after gzip decoding. The
	// default takes the largest body Firehose sends (64 MiB) plus room to spare.
	// Mind that Firehose treats a 413 answer as permanent and drops the batch
	// without copying it to its S3 error bucket: never set this below the buffer
	// size configured on the Firehose stream.
	MaxBodyBytes config.ByteSize `yaml:"max_body_bytes"`
	// MaxInFlight bounds the requests decoded and stored at once (each may hold
	// about three times its body in memory); more wait, unread, for a free slot.
	MaxInFlight int `yaml:"max_in_flight"`
	// TLS serves HTTPS when cert_file and key_file are set.
	TLS config.ServerTLS `yaml:"tls"`
	// ReadTimeout bounds reading one request.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// ResponseTimeout bounds a request from its arrival to its answer, so that
	// Firehose gets an error answer before its own 3-minute timeout.
	ResponseTimeout time.Duration `yaml:"response_timeout"`
	// RetryAfter is the Retry-After answered with 429 and 503.
	RetryAfter time.Duration `yaml:"retry_after"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		Address:         "127.0.0.1:8443",
		Path:            "/",
		MaxBodyBytes:    SpecMaxBodyBytes + 1<<20,
		MaxInFlight:     8,
		ReadTimeout:     2 * time.Minute,
		ResponseTimeout: 150 * time.Second,
		RetryAfter:      5 * time.Second,
	}
}

// DefaultFormat implements config.FormatDefaulter: Firehose's common use in the
// deployments Vigil replaces is carrying CloudWatch Logs subscriptions.
func (c *Config) DefaultFormat() string { return "cloudwatch_logs" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	host, _, err := net.SplitHostPort(c.Address)
	if err != nil {
		errs = append(errs, fmt.Errorf("address: want host:port, got %q", c.Address))
	} else if len(c.AccessKeys) == 0 && !c.AllowUnauthenticated && !config.IsLoopback(host) {
		errs = append(errs, fmt.Errorf("address: %s is reachable from other machines but no access_keys are set; set access_keys to the Firehose stream's access key, or allow_unauthenticated: true if something in front authenticates", c.Address))
	}
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
	if c.MaxBodyBytes < 1<<10 {
		errs = append(errs, errors.New("max_body_bytes: must be at least 1KiB"))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, errors.New("max_in_flight: must be at least 1"))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, errors.New("read_timeout: must be positive"))
	}
	if c.ResponseTimeout <= 0 || c.ResponseTimeout >= firehoseTimeout {
		errs = append(errs, fmt.Errorf("response_timeout: must be positive and below Firehose's %s timeout, got %s", firehoseTimeout, c.ResponseTimeout))
	}
	if c.RetryAfter < time.Second {
		errs = append(errs, errors.New("retry_after: must be at least 1s"))
	}
	return errors.Join(errs...)
}
