package cloudtrailparse

import (
	"fmt"

	"github.com/vigil-sec/vigil/internal/parse"
)

// DefaultMaxDecompressedBytes bounds how far a gzip-compressed log file may expand. A
// CloudTrail file that fits in an intake record is at most a few MiB compressed and
// expands ten to twenty times; anything far beyond that is a decompression bomb.
const DefaultMaxDecompressedBytes = 64 << 20

// Config holds the cloudtrail format's options.
type Config struct {
	// MaxDecompressedBytes is the largest size a gzip-compressed record may expand to;
	// a larger one is rejected as a whole.
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
	return nil
}

var _ parse.Config = (*Config)(nil)
