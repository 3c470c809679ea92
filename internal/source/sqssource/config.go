// Package sqssource is the `sqs` source: the messages of any Amazon SQS queue (or an
// SQS-compatible server) as records, one record per message body.
//
// Delivery: a message is deleted from the queue (DeleteMessageBatch) only after
// Intake.Store returned nil for every record of the batch it came in. While a batch
// is being stored the source extends the messages' visibility timeout, so a slow
// stream does not hand the same message to another receiver; if storing fails the
// messages are left alone and SQS delivers them again once their visibility timeout
// passes. A message that can never be stored (too large for the stream) is received
// again and again: give the queue a redrive policy (maxReceiveCount and a
// dead-letter queue), as for any SQS consumer.
//
// Each record carries its message's ID, sent time, receive count and message
// attributes under aws.sqs.* (and, with sns_envelope, the envelope's topic, subject
// and attributes under aws.sns.*) as Records.RecordFields.
package sqssource

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/vigil-sec/vigil/internal/awsconf"
)

// Limits of the SQS API (ReceiveMessage, ChangeMessageVisibility).
const (
	maxMessagesLimit  = 10
	maxWaitTime       = 20 * time.Second
	maxVisibility     = 12 * time.Hour
	minVisibility     = 2 * time.Second
	maxInFlightLimit  = 64
	defaultVisibility = 60 * time.Second
)

// Config is the sqs source's config.
type Config struct {
	awsconf.ClientConfig `yaml:",inline"`
	// QueueURL is the queue's URL (https://sqs.<region>.amazonaws.com/<account>/<name>).
	QueueURL string `yaml:"queue_url"`
	// SNSEnvelope unwraps messages delivered by an SNS subscription without raw
	// message delivery: a body {"Type":"Notification","Message":…} becomes its
	// Message. Other SNS message types (SubscriptionConfirmation) and bodies that are
	// not an SNS envelope go to the dead-letter stream and are deleted.
	SNSEnvelope bool `yaml:"sns_envelope"`
	// MaxMessages is how many messages one ReceiveMessage call asks for (1 to 10).
	MaxMessages int `yaml:"max_messages"`
	// WaitTime is the long-poll wait of ReceiveMessage (0 to 20s).
	WaitTime time.Duration `yaml:"wait_time"`
	// VisibilityTimeout hides received messages from other receivers for this long;
	// while storing takes longer, the source extends it by this much again, every
	// half of it. Whole seconds, 2s to 12h.
	VisibilityTimeout time.Duration `yaml:"visibility_timeout"`
	// MaxInFlight is how many receive-store-delete loops run at once, so at most
	// MaxInFlight × MaxMessages messages are held.
	MaxInFlight int `yaml:"max_in_flight"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		ClientConfig:      awsconf.ClientConfig{Region: awsconf.DefaultRegion},
		MaxMessages:       10,
		WaitTime:          20 * time.Second,
		VisibilityTimeout: defaultVisibility,
		MaxInFlight:       4,
	}
}

// DefaultFormat implements config.FormatDefaulter: SQS bodies are mostly JSON.
func (c *Config) DefaultFormat() string { return "json" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	errs := []error{c.ClientConfig.Validate()}
	if c.QueueURL == "" {
		errs = append(errs, errors.New("queue_url: required (https://sqs.<region>.amazonaws.com/<account>/<queue>)"))
	} else if u, err := url.Parse(c.QueueURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("queue_url: want an http(s) URL of a queue, got %q", c.QueueURL))
	}
	if c.MaxMessages < 1 || c.MaxMessages > maxMessagesLimit {
		errs = append(errs, fmt.Errorf("max_messages: want 1 to %d (the SQS limit), got %d", maxMessagesLimit, c.MaxMessages))
	}
	if c.WaitTime < 0 || c.WaitTime > maxWaitTime || c.WaitTime%time.Second != 0 {
		errs = append(errs, fmt.Errorf("wait_time: want whole seconds from 0 to 20s, got %s", c.WaitTime))
	}
	if c.VisibilityTimeout < minVisibility || c.VisibilityTimeout > maxVisibility || c.VisibilityTimeout%time.Second != 0 {
		errs = append(errs, fmt.Errorf("visibility_timeout: want whole seconds from %s to 12h, got %s", minVisibility, c.VisibilityTimeout))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > maxInFlightLimit {
		errs = append(errs, fmt.Errorf("max_in_flight: want 1 to %d, got %d", maxInFlightLimit, c.MaxInFlight))
	}
	return errors.Join(errs...)
}
