// Package kinesissource is the `kinesis` source: the records of every shard of an
// Amazon Kinesis data stream (or a Kinesis-compatible server), read with ListShards,
// GetShardIterator and GetRecords.
//
// Delivery: each GetRecords page is stored as one unit whose Records.ID is
// "<stream>/<shard>/<first sequence number>", and the shard's checkpoint (the last
// sequence number of the page) is written only after Intake.Store returned nil. A
// page read again after a crash, before its checkpoint was written, has the same ID
// and is dropped by the stream's duplicate window.
//
// Several nodes: checkpoints and shard leases live in a JetStream key-value bucket
// of the node's stream (KINESIS_<source name>), not in DynamoDB. Each node takes
// unleased or expired shards up to its fair share, renews its leases by
// compare-and-set and reads only shards it holds, so no shard has two readers at
// once; a stopped node releases its leases, a dead node's expire after lease_ttl and
// are taken over from their checkpoints.
//
// Resharding: a child shard is read only once its parents are finished (GetRecords
// returned no next iterator), so records of one partition key stay in order.
//
// Records written by the Kinesis Producer Library in aggregated form are split back
// into their user records.
package kinesissource

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/vigil-sec/vigil/internal/awsconf"
)

// Where a shard with no checkpoint starts.
const (
	StartTrimHorizon = "trim_horizon"
	StartLatest      = "latest"
	StartAtTimestamp = "at_timestamp"
)

var (
	streamPattern      = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	consumerPattern    = streamPattern
	consumerARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[a-zA-Z0-9_.-]+/consumer/[a-zA-Z0-9_.-]+:\d+$`)
)

// Config is the kinesis source's config.
type Config struct {
	awsconf.ClientConfig `yaml:",inline"`
	// Stream is the data stream's name.
	Stream string `yaml:"stream"`
	// StartAt is where a shard without a checkpoint is read from: trim_horizon (the
	// oldest record kept), latest (records put from now on) or at_timestamp.
	StartAt string `yaml:"start_at"`
	// Timestamp is where at_timestamp starts (RFC 3339).
	Timestamp time.Time `yaml:"timestamp"`
	// MaxRecords is how many records one GetRecords call asks for (1 to 10000).
	MaxRecords int `yaml:"max_records"`
	// PollInterval is the wait between GetRecords calls of a shard that returned no
	// records (Kinesis allows 5 calls per second per shard).
	PollInterval time.Duration `yaml:"poll_interval"`
	// ShardSyncInterval is how often the shard list and the leases are looked at
	// again (new shards after a reshard, expired leases of other nodes).
	ShardSyncInterval time.Duration `yaml:"shard_sync_interval"`
	// LeaseTTL is how long a shard lease lasts without renewal; a node renews its
	// leases every third of it. A dead node's shards are read again after it.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// EnhancedFanOut is reading with SubscribeToShard; off by default.
	EnhancedFanOut FanOutConfig `yaml:"enhanced_fan_out"`
}

// FanOutConfig is enhanced fan-out: a stream consumer and SubscribeToShard.
type FanOutConfig struct {
	// Enabled reads the shards through a stream consumer with SubscribeToShard
	// (records pushed over HTTP/2, 2 MB/s per shard for this consumer alone) instead
	// of polling with GetRecords.
	Enabled bool `yaml:"enabled"`
	// ConsumerName is the stream consumer the nodes share; registered
	// (RegisterStreamConsumer) when the stream has none of that name. Empty: "vigil-" and
	// the source's name.
	ConsumerName string `yaml:"consumer_name"`
	// ConsumerARN names an existing consumer instead of consumer_name; it is used as
	// it is, never registered.
	ConsumerARN string `yaml:"consumer_arn"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		ClientConfig:      awsconf.ClientConfig{Region: awsconf.DefaultRegion},
		StartAt:           StartTrimHorizon,
		MaxRecords:        1000,
		PollInterval:      time.Second,
		ShardSyncInterval: 10 * time.Second,
		LeaseTTL:          30 * time.Second,
	}
}

// DefaultFormat implements config.FormatDefaulter: Kinesis is most often fed by
// CloudWatch Logs subscriptions.
func (c *Config) DefaultFormat() string { return "cloudwatch_logs" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	errs := []error{c.ClientConfig.Validate()}
	if !streamPattern.MatchString(c.Stream) {
		errs = append(errs, fmt.Errorf("stream: want a Kinesis stream name (1 to 128 of A-Z a-z 0-9 _ . -), got %q", c.Stream))
	}
	switch c.StartAt {
	case StartTrimHorizon, StartLatest:
		if !c.Timestamp.IsZero() {
			errs = append(errs, errors.New("timestamp: only with start_at: at_timestamp"))
		}
	case StartAtTimestamp:
		if c.Timestamp.IsZero() {
			errs = append(errs, errors.New("timestamp: required with start_at: at_timestamp (RFC 3339, e.g. 2026-01-02T15:04:05Z)"))
		}
	default:
		errs = append(errs, fmt.Errorf("start_at: want trim_horizon, latest or at_timestamp, got %q", c.StartAt))
	}
	if c.MaxRecords < 1 || c.MaxRecords > 10000 {
		errs = append(errs, fmt.Errorf("max_records: want 1 to 10000 (the GetRecords limit), got %d", c.MaxRecords))
	}
	if c.PollInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("poll_interval: want at least 10ms, got %s", c.PollInterval))
	}
	if c.ShardSyncInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("shard_sync_interval: want at least 100ms, got %s", c.ShardSyncInterval))
	}
	if f := c.EnhancedFanOut; !f.Enabled && (f.ConsumerName != "" || f.ConsumerARN != "") {
		errs = append(errs, errors.New("enhanced_fan_out: consumer_name and consumer_arn only with enabled: true"))
	} else if f.ConsumerName != "" && f.ConsumerARN != "" {
		errs = append(errs, errors.New("enhanced_fan_out: set consumer_name or consumer_arn, not both"))
	} else if f.ConsumerName != "" && !consumerPattern.MatchString(f.ConsumerName) {
		errs = append(errs, fmt.Errorf("enhanced_fan_out.consumer_name: want 1 to 128 of A-Z a-z 0-9 _ . -, got %q", f.ConsumerName))
	} else if f.ConsumerARN != "" && !consumerARNPattern.MatchString(f.ConsumerARN) {
		errs = append(errs, fmt.Errorf("enhanced_fan_out.consumer_arn: want arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<timestamp>, got %q", f.ConsumerARN))
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("lease_ttl: want at least 1s, got %s", c.LeaseTTL))
	}
	return errors.Join(errs...)
}
