package sqssource

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; empty: valid
	}{
		{"defaults with a queue", func(*Config) {}, ""},
		{"no queue", func(c *Config) { c.QueueURL = "" }, "queue_url: required"},
		{"queue not a URL", func(c *Config) { c.QueueURL = "events" }, "queue_url: want an http(s) URL"},
		{"too many messages", func(c *Config) { c.MaxMessages = 11 }, "max_messages: want 1 to 10"},
		{"long wait", func(c *Config) { c.WaitTime = 21 * time.Second }, "wait_time"},
		{"fractional wait", func(c *Config) { c.WaitTime = 1500 * time.Millisecond }, "wait_time"},
		{"short visibility", func(c *Config) { c.VisibilityTimeout = time.Second }, "visibility_timeout"},
		{"no loops", func(c *Config) { c.MaxInFlight = 0 }, "max_in_flight"},
		{"half keys", func(c *Config) { c.AccessKeyID = "AKIA" }, "access_key_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			c.QueueURL = "http://127.0.0.1:4566/000000000000/events"
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

func TestUnwrapSNS(t *testing.T) {
	tests := []struct {
		name, give, want, err string
	}{
		{"notification", `{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"{\"a\":1}"}`, `{"a":1}`, ""},
		{"confirmation", `{"Type":"SubscriptionConfirmation","Message":"You have chosen…"}`, "", "not Notification"},
		{"raw delivery", `{"a":1}`, "", "no Type"},
		{"not json", `hello`, "", "not JSON"},
		{"no message", `{"Type":"Notification"}`, "", "without Message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unwrapSNS([]byte(tt.give))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("want an error with %q, got %v", tt.err, err)
				}
				return
			}
			if err != nil || *got.Message != tt.want {
				t.Fatalf("got %+v, %v; want %q", got, err, tt.want)
			}
		})
	}
}
