// Package s3source is the s3 source: it reads the S3 objects announced by S3 event
// notifications on an SQS queue (directly, wrapped in SNS, or in EventBridge's
// shape), chooses each object's format by its key, and stores its lines (or the
// whole object, for formats that parse whole files) in the intake stream. The SQS
// message is deleted only after every record of every object it names is stored.
package s3source

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/vigil-sec/vigil/internal/awsconf"
	"github.com/vigil-sec/vigil/internal/config"
)

// FormatAuto is the source format that leaves each object's format to the key rules;
// an object no rule matches is dead-lettered.
const FormatAuto = "auto"

// FormatSkip, as a key rule's format, skips the objects it matches (counted as
// discarded), e.g. CloudTrail's digest files.
const FormatSkip = "skip"

// Config is the s3 source's config.
type Config struct {
	// ClientConfig is how the source reaches SQS and S3: endpoint (one for both, as
	// LocalStack and moto serve), region, addressing and credentials.
	awsconf.ClientConfig `yaml:",inline"`
	// QueueURL is the SQS queue that receives the bucket's event notifications
	// (s3:ObjectCreated:*), directly, through an SNS topic, or from EventBridge.
	QueueURL string `yaml:"queue_url"`
	// KeyRules choose an object's format by its key; the first match wins, and the
	// built-in rules (AWSLogs/<account>/elasticloadbalancing/… → alb,
	// AWSLogs/<account>/CloudTrail/… → cloudtrail, CloudTrail-Digest → skip,
	// vpcflowlogs → vpcflow, CloudFront's <distribution>.YYYY-MM-DD-HH.<id>.gz →
	// cloudfront) are tried after these. An object no rule matches is read with the
	// source's format, or dead-lettered when the format is auto.
	KeyRules []KeyRule `yaml:"key_rules"`
	// BuiltinKeyRules adds the built-in rules after key_rules.
	BuiltinKeyRules bool `yaml:"builtin_key_rules"`
	// MaxInFlight is the number of SQS messages (objects) read at once.
	MaxInFlight int `yaml:"max_in_flight"`
	// WaitTime is the SQS long-poll wait (1s to 20s).
	WaitTime time.Duration `yaml:"wait_time"`
	// VisibilityTimeout is how long a received message stays hidden from other
	// readers; while its objects are being read the source extends it by this much
	// every half of it, so a large object is not handed to another reader.
	VisibilityTimeout time.Duration `yaml:"visibility_timeout"`
	// ChunkBytes is the size of the record chunks stored at once (each one intake
	// store, with its own message ID).
	ChunkBytes config.ByteSize `yaml:"chunk_bytes"`
	// MaxRecordBytes bounds one line, or one whole object for formats that parse
	// whole files; a longer one is dead-lettered (its first bytes) with the reason.
	MaxRecordBytes config.ByteSize `yaml:"max_record_bytes"`
}

// KeyRule maps keys matching a glob to a format.
type KeyRule struct {
	// Match is a glob over the whole key: * matches within one path segment, ?
	// one character, ** any number of segments ("**/" also none).
	Match string `yaml:"match"`
	// Format is the format of matching objects, or skip.
	Format string `yaml:"format"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		ClientConfig:      awsconf.ClientConfig{Region: awsconf.DefaultRegion},
		BuiltinKeyRules:   true,
		MaxInFlight:       4,
		WaitTime:          20 * time.Second,
		VisibilityTimeout: 5 * time.Minute,
		ChunkBytes:        256 << 10,
		MaxRecordBytes:    8 << 20,
	}
}

// DefaultFormat implements config.FormatDefaulter.
func (c *Config) DefaultFormat() string { return FormatAuto }

// ChoosesFormat implements config.FormatChooser: auto is the key rules' choice.
func (c *Config) ChoosesFormat(format string) bool { return format == FormatAuto }

// ChosenFormats implements config.FormatLister: the formats of the key rules
// (skip is not a format), checked against the parsers when the config loads.
func (c *Config) ChosenFormats() []config.ChosenFormat {
	var out []config.ChosenFormat
	for i, r := range c.KeyRules {
		if r.Format != "" && r.Format != FormatSkip {
			out = append(out, config.ChosenFormat{Path: fmt.Sprintf("key_rules[%d].format", i), Format: r.Format})
		}
	}
	return out
}

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	if err := c.ClientConfig.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.QueueURL == "" {
		errs = append(errs, errors.New("queue_url: required (https://sqs.<region>.amazonaws.com/<account>/<queue>)"))
	} else if u, err := url.Parse(c.QueueURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("queue_url: want an http or https queue URL, got %q", c.QueueURL))
	}
	for i, r := range c.KeyRules {
		if r.Match == "" {
			errs = append(errs, fmt.Errorf("key_rules[%d].match: required", i))
		} else if _, err := compileGlob(r.Match); err != nil {
			errs = append(errs, fmt.Errorf("key_rules[%d].match: %v", i, err))
		}
		if r.Format == "" {
			errs = append(errs, fmt.Errorf("key_rules[%d].format: required (a format name, or skip)", i))
		}
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1024 {
		errs = append(errs, fmt.Errorf("max_in_flight: want 1 to 1024, got %d", c.MaxInFlight))
	}
	if c.WaitTime < time.Second || c.WaitTime > 20*time.Second {
		errs = append(errs, fmt.Errorf("wait_time: SQS long-polls 1s to 20s, got %s", c.WaitTime))
	}
	if c.VisibilityTimeout < 10*time.Second || c.VisibilityTimeout > 12*time.Hour {
		errs = append(errs, fmt.Errorf("visibility_timeout: want 10s to 12h (SQS's limit), got %s", c.VisibilityTimeout))
	}
	if c.ChunkBytes < 1<<10 || c.ChunkBytes > 768<<10 {
		errs = append(errs, fmt.Errorf("chunk_bytes: want 1KiB to 768KiB (below the intake's batch size), got %d", c.ChunkBytes))
	}
	if c.MaxRecordBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("max_record_bytes: want at least 1KiB, got %d", c.MaxRecordBytes))
	}
	return errors.Join(errs...)
}
