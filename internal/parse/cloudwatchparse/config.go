package cloudwatchparse

import (
	"fmt"

	"github.com/vigil-sec/vigil/internal/parse"
)

// DefaultMaxDecompressedBytes bounds how far a compressed payload may expand. A
// subscription payload is at most 1 MiB of log events before compression (the
// PutLogEvents batch limit), so 64 MiB leaves ample room while stopping bombs.
const DefaultMaxDecompressedBytes = 64 << 20

// Config holds the cloudwatch_logs format's options.
type Config struct {
	// MessageFormat names a format that parses each log event's message further (for
	// example "cloudtrail", "vpcflow", "json", "syslog"); empty keeps the message as text.
	// The inner format runs with its default options.
	MessageFormat string `yaml:"message_format"`
	// MaxDecompressedBytes is the largest size a gzip- or zlib-compressed payload may
	// expand to; a larger one is rejected.
	MaxDecompressedBytes int64 `yaml:"max_decompressed_bytes"`
}

// NewConfig returns the default options.
func NewConfig() *Config {
	return &Config{MaxDecompressedBytes: DefaultMaxDecompressedBytes}
}

// Validate implements parse.Config.
func (c *Config) Validate() error {
	if c.MaxDecompressedBytes <= 0 {
		return fmt.Errorf("max_decompressed_bytes: must be positive, got %d", c.MaxDecompressedBytes)
	}
	if c.MaxDecompressedBytes > 1<<30 {
		return fmt.Errorf("max_decompressed_bytes: at most 1 GiB, got %d", c.MaxDecompressedBytes)
	}
	if c.MessageFormat == Name {
		return fmt.Errorf("message_format: %q cannot parse its own messages", Name)
	}
	return nil
}

var _ parse.Config = (*Config)(nil)
