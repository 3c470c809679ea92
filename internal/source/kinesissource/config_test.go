package kinesissource

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ts := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; empty: valid
	}{
		{"defaults with a stream", func(*Config) {}, ""},
		{"at_timestamp", func(c *Config) { c.StartAt, c.Timestamp = StartAtTimestamp, ts }, ""},
		{"latest", func(c *Config) { c.StartAt = StartLatest }, ""},
		{"no stream", func(c *Config) { c.Stream = "" }, "stream: want a Kinesis stream name"},
		{"stream with a slash", func(c *Config) { c.Stream = "a/b" }, "stream: want a Kinesis stream name"},
		{"unknown start_at", func(c *Config) { c.StartAt = "oldest" }, "start_at: want trim_horizon, latest or at_timestamp"},
		{"at_timestamp without timestamp", func(c *Config) { c.StartAt = StartAtTimestamp }, "timestamp: required"},
		{"timestamp without at_timestamp", func(c *Config) { c.Timestamp = ts }, "timestamp: only with start_at: at_timestamp"},
		{"too many records", func(c *Config) { c.MaxRecords = 10001 }, "max_records"},
		{"fast polling", func(c *Config) { c.PollInterval = time.Millisecond }, "poll_interval"},
		{"fast shard sync", func(c *Config) { c.ShardSyncInterval = time.Millisecond }, "shard_sync_interval"},
		{"short lease", func(c *Config) { c.LeaseTTL = 500 * time.Millisecond }, "lease_ttl"},
		{"half keys", func(c *Config) { c.AccessKeyID = "AKIA" }, "access_key_id"},
		{"fan-out", func(c *Config) { c.EnhancedFanOut = FanOutConfig{Enabled: true} }, ""},
		{"fan-out with a name", func(c *Config) { c.EnhancedFanOut = FanOutConfig{Enabled: true, ConsumerName: "vigil"} }, ""},
		{"fan-out with an ARN", func(c *Config) {
			c.EnhancedFanOut = FanOutConfig{Enabled: true, ConsumerARN: "arn:aws:kinesis:us-east-1:123456789012:stream/central-logs/consumer/vigil:1767225600"}
		}, ""},
		{"consumer without fan-out", func(c *Config) { c.EnhancedFanOut.ConsumerName = "vigil" }, "only with enabled: true"},
		{"name and ARN", func(c *Config) {
			c.EnhancedFanOut = FanOutConfig{Enabled: true, ConsumerName: "vigil",
				ConsumerARN: "arn:aws:kinesis:us-east-1:123456789012:stream/central-logs/consumer/vigil:1767225600"}
		}, "not both"},
		{"bad consumer name", func(c *Config) { c.EnhancedFanOut = FanOutConfig{Enabled: true, ConsumerName: "a b"} }, "consumer_name"},
		{"bad consumer ARN", func(c *Config) {
			c.EnhancedFanOut = FanOutConfig{Enabled: true, ConsumerARN: "arn:aws:kinesis:us-east-1:123456789012:stream/central-logs"}
		}, "consumer_arn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			c.Stream = "central-logs"
			tt.mutate(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("want an error with %q, got %v", tt.want, err)
			}
		})
	}
}

func TestBucket(t *testing.T) {
	if got := Bucket("central.logs/eu"); got != "KINESIS_central_logs_eu" {
		t.Fatalf("got %q", got)
	}
}
