// Package splunkhecsink is the `splunk_hec` sink: event documents sent to Splunk's
// HTTP Event Collector (`/services/collector/event`) as concatenated event objects
// whose "event" is the ECS document's bytes as they are (framed, never decoded and
// re-encoded), with time, host, source, sourcetype and index per dataset, in gzip
// bodies, batched by bytes, count and time.
//
// With indexer_acknowledgement, a request Splunk accepted is only "received": the
// sink polls `/services/collector/ack` on its channel and acknowledges the stream
// only once Splunk reports the request indexed. A request whose ack does not come
// within ack.timeout is sent again. Splunk has no idempotent document id (nothing
// like Elasticsearch's _id), so such a resend — and a redelivery of a batch after a
// crash or a stop that gave up on it — can index the same event twice: delivery to
// Splunk is at least once, never at most once.
package splunkhecsink

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
)

// Config is the splunk_hec sink's config.
type Config struct {
	// URL of the HEC endpoint's base ("https://splunk.example:8088"); requests go to
	// <url>/services/collector/event and <url>/services/collector/ack.
	URL string `yaml:"url"`
	// Token is the HEC token, sent as "Authorization: Splunk <token>".
	Token string `yaml:"token" secret:"true"`
	// IndexerAcknowledgement waits for Splunk to confirm that each request was
	// indexed before the stream is acknowledged. The token must have indexer
	// acknowledgement enabled. Without it, a "200 Success" answer is delivery.
	IndexerAcknowledgement bool `yaml:"indexer_acknowledgement"`
	// Datasets sets the Splunk metadata of events by dataset. Keys are dataset
	// names or globs ("aws.*"); "default" applies where no key matches, and fills
	// in the fields a matching entry leaves empty.
	Datasets map[string]Metadata `yaml:"datasets"`
	// Compression of request bodies: gzip (default) or none.
	Compression string `yaml:"compression"`
	// Batch bounds one request.
	Batch Batch `yaml:"batch"`
	// MaxInFlight is the number of event requests under way at once; more waiting
	// events hold the stream back rather than pile up in memory.
	MaxInFlight int `yaml:"max_in_flight"`
	// Ack tunes indexer acknowledgement.
	Ack Ack `yaml:"ack"`
	// Retry is the backoff between attempts after transient failures.
	Retry Retry `yaml:"retry"`
	// TLS for https URLs.
	TLS config.ClientTLS `yaml:"tls"`
	// RequestTimeout bounds one HTTP request, response included.
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// Metadata is the Splunk metadata of a dataset's events.
type Metadata struct {
	// Sourcetype; default "_json", Splunk's built-in JSON source type.
	Sourcetype string `yaml:"sourcetype"`
	// Index; default none, which lets Splunk use the token's default index.
	Index string `yaml:"index"`
	// Source; default "vigil:<dataset>".
	Source string `yaml:"source"`
	// Host; default the document's host.name, or none (Splunk then sets it).
	Host string `yaml:"host"`
}

// Batch bounds one request: it is sent when any limit is reached.
type Batch struct {
	// MaxBytes of framed events, before compression.
	MaxBytes config.ByteSize `yaml:"max_bytes"`
	// MaxEvents per request.
	MaxEvents int `yaml:"max_events"`
	// MaxWait after the first event was added.
	MaxWait time.Duration `yaml:"max_wait"`
}

// Ack tunes indexer acknowledgement.
type Ack struct {
	// PollInterval between queries of the ack endpoint.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Timeout after which a request whose ack has not come is sent again.
	Timeout time.Duration `yaml:"timeout"`
	// MaxPending is the number of requests awaiting their ack at once; when
	// reached, sending waits (backpressure). Each holds up to batch.max_bytes of
	// memory until it is confirmed.
	MaxPending int `yaml:"max_pending"`
}

// Retry is an exponential backoff with jitter.
type Retry struct {
	Initial time.Duration `yaml:"initial"`
	Max     time.Duration `yaml:"max"`
}

// DefaultSourcetype is the sourcetype of datasets without one configured.
const DefaultSourcetype = "_json"

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		URL:            "https://127.0.0.1:8088",
		Compression:    "gzip",
		Batch:          Batch{MaxBytes: 1 << 20, MaxEvents: 1000, MaxWait: time.Second},
		MaxInFlight:    4,
		Ack:            Ack{PollInterval: time.Second, Timeout: 5 * time.Minute, MaxPending: 1000},
		Retry:          Retry{Initial: 500 * time.Millisecond, Max: 30 * time.Second},
		RequestTimeout: 30 * time.Second,
	}
}

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	if _, err := baseURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("token: required (the HEC token; use ${ENV} or a file secret)"))
	} else if strings.ContainsAny(c.Token, " \r\n\t") {
		errs = append(errs, errors.New("token: must not contain spaces or line breaks"))
	}
	for k, m := range c.Datasets {
		if k == "" {
			errs = append(errs, errors.New("datasets: empty key"))
			continue
		}
		if _, err := path.Match(k, ""); err != nil {
			errs = append(errs, fmt.Errorf("datasets.%s: not a valid glob: %v", k, err))
		}
		for name, v := range map[string]string{"sourcetype": m.Sourcetype, "index": m.Index, "source": m.Source, "host": m.Host} {
			if strings.ContainsAny(v, "\r\n") {
				errs = append(errs, fmt.Errorf("datasets.%s.%s: must not contain line breaks", k, name))
			}
		}
	}
	switch c.Compression {
	case "gzip", "none":
	default:
		errs = append(errs, fmt.Errorf("compression: want gzip or none, got %q", c.Compression))
	}
	if c.Batch.MaxBytes < 1<<10 {
		errs = append(errs, errors.New("batch.max_bytes: must be at least 1KiB"))
	}
	if c.Batch.MaxEvents < 1 {
		errs = append(errs, errors.New("batch.max_events: must be at least 1"))
	}
	if c.Batch.MaxWait < time.Millisecond {
		errs = append(errs, errors.New("batch.max_wait: must be at least 1ms"))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 64 {
		errs = append(errs, fmt.Errorf("max_in_flight: want 1 to 64, got %d", c.MaxInFlight))
	}
	if c.Ack.PollInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("ack.poll_interval: must be at least 10ms"))
	}
	if c.Ack.Timeout < c.Ack.PollInterval {
		errs = append(errs, errors.New("ack.timeout: must be at least ack.poll_interval"))
	}
	if c.Ack.MaxPending < 1 {
		errs = append(errs, errors.New("ack.max_pending: must be at least 1"))
	}
	if c.Retry.Initial < time.Millisecond {
		errs = append(errs, errors.New("retry.initial: must be at least 1ms"))
	}
	if c.Retry.Max < c.Retry.Initial {
		errs = append(errs, errors.New("retry.max: must be at least retry.initial"))
	}
	if c.RequestTimeout < 100*time.Millisecond {
		errs = append(errs, errors.New("request_timeout: must be at least 100ms"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: set both cert_file and key_file"))
	}
	return errors.Join(errs...)
}

// baseURL parses the configured URL. A URL that already names a collector
// endpoint is cut back to its base, since operators often paste the full path.
func baseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("want an http or https URL, got %q", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no host in %q", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("credentials in %q: put the HEC token in token", u.Redacted())
	}
	p := strings.TrimRight(u.Path, "/")
	for _, suffix := range []string{"/services/collector/event/1.0", "/services/collector/event", "/services/collector"} {
		if strings.HasSuffix(p, suffix) {
			p = strings.TrimSuffix(p, suffix)
			break
		}
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = p, "", "", ""
	return u, nil
}
