// Package archivesink is the `file_archive` sink: gzip (or zstd) NDJSON files in a local
// directory, laid out by dataset and hour, named by the events stream's epoch and the
// sequences they hold, written to a temporary name, fsynced and renamed before the
// stream is acknowledged.
package archivesink

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
)

// Config is the file_archive sink's config.
type Config struct {
	// Path is the archive's root directory; default <data_dir>/archive.
	Path string `yaml:"path"`
	// MaxBytes rotates a file when its uncompressed content reaches this size.
	MaxBytes config.ByteSize `yaml:"max_bytes"`
	// MaxAge rotates a file this long after it was opened, so data shows up quickly.
	MaxAge time.Duration `yaml:"max_age"`
	// Compression of the files: gzip (.ndjson.gz, the default, readable by every
	// tool) or zstd (.ndjson.zst: ~12% smaller than gzip at level 1 but ~1.5x its
	// CPU, docs/performance.md; read with zstd -d or zstdcat).
	Compression string `yaml:"compression"`
	// CompressionLevel is the level, 1 (fastest) to 9 (smallest); for zstd 1 is its
	// fastest level, 2-4 its default, 5-7 better and 8-9 its best compression.
	// Processing compresses event batches with this compression and level when
	// processing.events_compression is auto, and the archive writes those batches as
	// they are; batches compressed otherwise are compressed here at this level.
	CompressionLevel int `yaml:"compression_level"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{MaxBytes: 64 << 20, MaxAge: 10 * time.Second, Compression: "gzip", CompressionLevel: 1}
}

// FrameEncoding implements config.FrameSettings: processing compresses event
// batches as the archive does when processing.events_compression is auto.
func (c *Config) FrameEncoding() (encoding string, level int) {
	return c.Compression, c.CompressionLevel
}

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBytes < 1<<10 {
		errs = append(errs, errors.New("max_bytes: must be at least 1KiB"))
	}
	if c.MaxAge < 100*time.Millisecond {
		errs = append(errs, errors.New("max_age: must be at least 100ms"))
	}
	if c.Compression != "gzip" && c.Compression != "zstd" {
		errs = append(errs, fmt.Errorf("compression: want gzip or zstd, got %q", c.Compression))
	}
	if c.CompressionLevel < 1 || c.CompressionLevel > 9 {
		errs = append(errs, fmt.Errorf("compression_level: want 1 to 9, got %d", c.CompressionLevel))
	}
	return errors.Join(errs...)
}
