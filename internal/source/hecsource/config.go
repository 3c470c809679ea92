// Package hecsource is the `hec` source: a Splunk HTTP Event Collector-compatible
// intake, so that forwarders configured for Splunk HEC can point at Vigil unchanged.
//
// Endpoints (as Splunk serves them):
//
//   - POST /services/collector, /services/collector/event, /services/collector/event/1.0:
//     JSON events, one after another ({...}{...}) or newline-separated, each with
//     "event" (string, object or any JSON value) and optional "time" (epoch seconds,
//     a number or a numeric string, with a fraction), "host", "source", "sourcetype",
//     "index" and "fields" (a flat object of indexed fields).
//   - POST /services/collector/raw, /services/collector/raw/1.0: each non-blank body line
//     is one event; metadata comes from the query parameters host, source, sourcetype,
//     index and time.
//   - GET /services/collector/health, /services/collector/health/1.0: no token needed.
//   - POST /services/collector/ack: indexer acknowledgement queries.
//
// Answers follow Splunk's documented status codes: {"text":"Success","code":0} with
// 200 only once every event of the request is stored in the intake stream; 401
// code 2 (token is required) or 3 (invalid authorization); 403 code 4 (invalid
// token); 400 code 5 (no data), 6 (invalid data format, with "invalid-event-number"),
// 7 (incorrect index), 10 (data channel is missing), 11 (invalid data channel), 12
// (event field is required), 13 (event field cannot be blank), 14 (ACK is disabled),
// 15 (error in handling indexed fields), 16 (query string authorization is not
// enabled); 503 code 9 (server is busy, with Retry-After) when the intake stream is
// full or unavailable or the source is shutting down. A request with one bad event
// stores nothing (Splunk would index the events before it), so that the sender's
// retry of a fixed request does not duplicate events.
//
// Each event becomes one raw record: a JSON object the source builds, parsed by the
// source's format (default json):
//
//	"event" string      → "message"
//	"event" object      → its members, at the top level
//	"event" other JSON  → "message" (the JSON text)
//	"time"              → "@timestamp" (RFC 3339, UTC, to the nanosecond)
//	"host"              → "host.name"
//	"source"            → "splunk.source"
//	"sourcetype"        → "splunk.sourcetype"
//	"index"             → "splunk.index"
//	"fields"            → "splunk.fields.*"
//
// The metadata is written after the event's members, so it wins a key collision (the
// event's own "host" string and the metadata's "host.name" both survive: the ECS
// encoder keeps the string as "host.value").
//
// Indexer acknowledgement (indexer_acknowledgement: true): requests must name a
// channel (X-Splunk-Request-Channel header or channel query parameter, a GUID); the
// success answer carries "ackId", increasing per channel; POST /services/collector/ack
// with {"acks":[0,1]} answers {"acks":{"0":true,"1":false}}. Vigil stores before it
// answers, so an ackId is handed out only for stored events and is true from then on;
// ids never handed out on the channel are false. A channel's state is one counter,
// forgotten after channel_idle_timeout without use; at most max_channels channels
// are kept (a new channel beyond that gets 503 code 9 until one expires).
package hecsource

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/source/httpserver"
)

// Config is the hec source's config.
type Config struct {
	// Splunk's HEC port is 8088. Splunk Enterprise's own body limit (limits.conf
	// max_content_length) is far larger than max_body_bytes; the whole body is held
	// in memory here, and common HEC senders batch well below it. HEC answers a busy
	// server with 503 (code 9), never 429, so retry_after goes with 503 only.
	httpserver.BoundedConfig `yaml:",inline"`
	// Tokens are the accepted HEC tokens, sent as "Authorization: Splunk <token>" (or
	// as the password of HTTP basic authentication, which Splunk also documents).
	Tokens []string `yaml:"tokens" secret:"true"`
	// AllowQueryStringAuth accepts the token as ?token=<token>, as Splunk does only
	// for tokens with query string authentication enabled. Tokens in URLs end up in
	// access logs; prefer the header.
	AllowQueryStringAuth bool `yaml:"allow_query_string_auth"`
	// IndexerAcknowledgement requires a channel on every request and answers ackIds.
	IndexerAcknowledgement bool `yaml:"indexer_acknowledgement"`
	// MaxChannels bounds the acknowledgement channels kept at once.
	MaxChannels int `yaml:"max_channels"`
	// ChannelIdleTimeout forgets a channel unused this long (its ackIds then read
	// false).
	ChannelIdleTimeout time.Duration `yaml:"channel_idle_timeout"`
	// AllowedIndexes, when set, are the only "index" values accepted (as a Splunk
	// token's allowed indexes); others get 400 code 7. An event without an index is
	// always accepted.
	AllowedIndexes []string `yaml:"allowed_indexes"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	srv := httpserver.NewBoundedConfig("127.0.0.1:8088", 16)
	srv.MaxBodyBytes = 16 << 20
	srv.ReadTimeout = 60 * time.Second
	return &Config{BoundedConfig: srv, MaxChannels: 10000, ChannelIdleTimeout: 10 * time.Minute}
}

// DefaultFormat implements config.FormatDefaulter: the source stores JSON objects.
func (c *Config) DefaultFormat() string { return "json" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	errs := []error{c.BoundedConfig.Validate(httpserver.Auth{
		Configured: len(c.Tokens) > 0,
		Missing:    "no tokens are set; set tokens",
	})}
	for i, t := range c.Tokens {
		if strings.TrimSpace(t) == "" {
			errs = append(errs, fmt.Errorf("tokens[%d]: empty token", i))
		}
	}
	if c.AllowQueryStringAuth && len(c.Tokens) == 0 {
		errs = append(errs, errors.New("allow_query_string_auth: needs tokens"))
	}
	if c.MaxChannels < 1 {
		errs = append(errs, errors.New("max_channels: must be at least 1"))
	}
	if c.ChannelIdleTimeout < time.Second {
		errs = append(errs, errors.New("channel_idle_timeout: must be at least 1s"))
	}
	for i, ix := range c.AllowedIndexes {
		if strings.TrimSpace(ix) == "" {
			errs = append(errs, fmt.Errorf("allowed_indexes[%d]: empty index name", i))
		}
	}
	return errors.Join(errs...)
}
