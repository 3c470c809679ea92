package httpserver

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
)

// Config is the server settings every HTTP intake source takes. A source embeds it
// with `yaml:",inline"`, so its keys are the source's own (address, tls, …), and
// starts from NewConfig.
type Config struct {
	// Address to listen on, host:port.
	Address string `yaml:"address"`
	// AllowUnauthenticated permits listening on a non-loopback address without the
	// source's credentials, for when something in front authenticates.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// MaxBodyBytes limits a request body, before and after gzip decoding.
	MaxBodyBytes config.ByteSize `yaml:"max_body_bytes"`
	// TLS serves HTTPS when cert_file and key_file are set.
	TLS config.ServerTLS `yaml:"tls"`
	// ReadTimeout bounds reading one request.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// RetryAfter is the Retry-After of the answers that ask the sender to come back
	// later (intake stream full or unavailable, shutting down).
	RetryAfter time.Duration `yaml:"retry_after"`
}

// NewConfig returns the defaults, listening on address (each protocol has its
// port). A source changes what its protocol asks for, such as a larger body.
func NewConfig(address string) Config {
	return Config{
		Address:      address,
		MaxBodyBytes: 10 << 20,
		ReadTimeout:  30 * time.Second,
		RetryAfter:   5 * time.Second,
	}
}

// Auth is what Validate needs to know of a source's authentication.
type Auth struct {
	// Configured is whether the source has credentials set (tokens, keys, users).
	Configured bool
	// Missing says what is unset and how to set it ("no tokens are set; set
	// tokens"), for the error of a listener reachable from other machines without.
	Missing string
}

// Validate checks the settings: among them, that a listener reachable from other
// machines authenticates its clients unless allow_unauthenticated says something
// in front does. Errors start with the key they are about.
func (c Config) Validate(auth Auth) error {
	var errs []error
	host, _, err := net.SplitHostPort(c.Address)
	if err != nil {
		errs = append(errs, fmt.Errorf("address: want host:port, got %q", c.Address))
	} else if !auth.Configured && !c.AllowUnauthenticated && !config.IsLoopback(host) {
		errs = append(errs, fmt.Errorf("address: %s is reachable from other machines but %s, or allow_unauthenticated: true if something in front authenticates", c.Address, auth.Missing))
	}
	if c.MaxBodyBytes < 1<<10 {
		errs = append(errs, errors.New("max_body_bytes: must be at least 1KiB"))
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

// Scheme is "https" when the listener serves TLS, else "http".
func (c Config) Scheme() string {
	if c.TLS.Enabled() {
		return "https"
	}
	return "http"
}

// RetryAfterSeconds is the value of a Retry-After header: RetryAfter in whole
// seconds.
func (c Config) RetryAfterSeconds() string {
	return strconv.Itoa(int(c.RetryAfter.Round(time.Second) / time.Second))
}

// BoundedConfig is Config with a bound on the requests handled at once, for the
// sources that take it (firehose, hec, elasticsearch_bulk).
type BoundedConfig struct {
	Config `yaml:",inline"`
	// MaxInFlight bounds the requests decoded and stored at once; more wait, unread,
	// for a free slot.
	MaxInFlight int `yaml:"max_in_flight"`
}

// NewBoundedConfig returns the defaults of NewConfig with maxInFlight.
func NewBoundedConfig(address string, maxInFlight int) BoundedConfig {
	return BoundedConfig{Config: NewConfig(address), MaxInFlight: maxInFlight}
}

// Validate checks the settings as Config.Validate does, and max_in_flight.
func (c BoundedConfig) Validate(auth Auth) error {
	err := c.Config.Validate(auth)
	if c.MaxInFlight < 1 {
		err = errors.Join(err, errors.New("max_in_flight: must be at least 1"))
	}
	return err
}
