// Package filesource is the `file` source: it follows files named by globs (the
// Kinesis Agent / Filebeat role), through rotation by rename-and-create and by
// copytruncate, and stores their lines (or, for whole-record formats such as
// cloudtrail, each whole file) in the intake stream.
//
// Delivery: a file's checkpoint (path, device, inode, fingerprint, offset) moves past a
// line only after Intake.Store returned nil for it; before a batch is stored, a
// checkpoint naming its end is written (two slot files under DataDir/sources/<name>/,
// written in turn and fsynced). Reading runs up to three batches ahead of storing.
// After a crash the source resumes at the checkpoint: the batches that may have been
// stored are read again, cut where they were and stored under the same IDs (which the
// stream drops), and nothing is skipped. docs/sources-file.md states the guarantees and
// their limits.
package filesource

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
)

// Multiline joins continuation lines to the line that started a record.
type Multiline struct {
	// Start is a regular expression matching the first line of a record (e.g.
	// `^\d{4}-\d{2}-\d{2}` for a Java log whose stack trace lines follow). Lines
	// that do not match are appended to the current record. Empty: one line, one
	// record.
	Start string `yaml:"start"`
	// Timeout emits a record once no line was added to it for this long at the end
	// of the file (the writer may be done with it).
	Timeout time.Duration `yaml:"timeout"`
}

// Config is the file source's config.
type Config struct {
	// Paths are globs of the files to follow ("/var/log/apache2/access.log*").
	Paths []string `yaml:"paths"`
	// Exclude are globs of files not to follow, matched against the file's base name
	// and against its whole path ("*.gz").
	Exclude []string `yaml:"exclude"`
	// StartAt is where a file found on the very first start (no checkpoint yet) is
	// read from: end (only lines written from now on) or beginning. Files that
	// appear later, or after a restart, are always read from their beginning.
	StartAt string `yaml:"start_at"`
	// MaxLineBytes is the longest line (or multiline record, or whole file) kept.
	// A longer one is cut to this size and sent to the dead-letter stream (stage
	// intake, reason naming its size), never stored as a record. 0: 64KiB for
	// lines, 896KiB for whole files.
	MaxLineBytes config.ByteSize `yaml:"max_line_bytes"`
	// Multiline joins lines into records by a start pattern.
	Multiline Multiline `yaml:"multiline"`
	// ReadGzip reads files ending in .gz, decompressed, once each. Off by default:
	// rotated and compressed copies of a followed log hold lines already read.
	ReadGzip bool `yaml:"read_gzip"`
	// ScanInterval is how often the globs are expanded again to find new, renamed
	// and deleted files.
	ScanInterval time.Duration `yaml:"scan_interval"`
	// PollInterval is how often followed files are checked for new data.
	PollInterval time.Duration `yaml:"poll_interval"`
	// BatchMaxLines and BatchMaxBytes bound one store into the intake stream; the
	// checkpoint moves after each.
	BatchMaxLines int             `yaml:"batch_max_lines"`
	BatchMaxBytes config.ByteSize `yaml:"batch_max_bytes"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		StartAt:       "end",
		Multiline:     Multiline{Timeout: time.Second},
		ScanInterval:  time.Second,
		PollInterval:  250 * time.Millisecond,
		BatchMaxLines: 10000,
		BatchMaxBytes: 896 << 10,
	}
}

// DefaultFormat implements config.FormatDefaulter.
func (c *Config) DefaultFormat() string { return "lines" }

const (
	defaultMaxLine  = 64 << 10
	defaultMaxWhole = 896 << 10
)

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Paths) == 0 {
		errs = append(errs, errors.New(`paths: set at least one glob, e.g. ["/var/log/apache2/access.log*"]`))
	}
	for i, p := range c.Paths {
		if _, err := filepath.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("paths[%d]: %q: %w", i, p, err))
		} else if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("paths[%d]: %q: want an absolute path", i, p))
		}
	}
	for i, p := range c.Exclude {
		if _, err := filepath.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("exclude[%d]: %q: %w", i, p, err))
		}
	}
	if c.StartAt != "end" && c.StartAt != "beginning" {
		errs = append(errs, fmt.Errorf("start_at: want end or beginning, got %q", c.StartAt))
	}
	if c.MaxLineBytes < 0 || c.MaxLineBytes > defaultMaxWhole {
		errs = append(errs, fmt.Errorf("max_line_bytes: want 0 (automatic) to %d bytes (896KiB), got %d", defaultMaxWhole, c.MaxLineBytes))
	}
	if c.Multiline.Start != "" {
		if _, err := regexp.Compile(c.Multiline.Start); err != nil {
			errs = append(errs, fmt.Errorf("multiline.start: %w", err))
		}
	}
	if c.Multiline.Timeout <= 0 {
		errs = append(errs, errors.New("multiline.timeout: must be positive"))
	}
	if c.ScanInterval < 10*time.Millisecond || c.ScanInterval > time.Hour {
		errs = append(errs, fmt.Errorf("scan_interval: want 10ms to 1h, got %s", c.ScanInterval))
	}
	if c.PollInterval < time.Millisecond || c.PollInterval > time.Minute {
		errs = append(errs, fmt.Errorf("poll_interval: want 1ms to 1m, got %s", c.PollInterval))
	}
	if c.BatchMaxLines < 1 || c.BatchMaxLines > 100000 {
		errs = append(errs, fmt.Errorf("batch_max_lines: want 1 to 100000, got %d", c.BatchMaxLines))
	}
	if c.BatchMaxBytes < 1024 || c.BatchMaxBytes > event.MaxBatchBytes {
		errs = append(errs, fmt.Errorf("batch_max_bytes: want 1KiB to 900KiB, got %d", c.BatchMaxBytes))
	}
	return errors.Join(errs...)
}

// maxRecord is the effective max_line_bytes.
func (c *Config) maxRecord(whole bool) int {
	switch {
	case c.MaxLineBytes > 0:
		return int(c.MaxLineBytes)
	case whole:
		return defaultMaxWhole
	default:
		return defaultMaxLine
	}
}
