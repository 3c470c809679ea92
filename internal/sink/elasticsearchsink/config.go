// Package elasticsearchsink is the `elasticsearch` sink (and `opensearch`, the same
// code): event documents framed as bulk API requests, batched by bytes, count and
// time, gzip-compressed, sent to one of several URLs with failover. Each document's
// `_id` is its deterministic event.id, so a redelivery overwrites instead of
// duplicating. Outcomes are per item: items the cluster throttled (429) or failed
// (5xx) are resent alone with backoff, items it rejected for good (mapping errors)
// go to the dead-letter stream, and a batch is acknowledged only when every one of
// its documents is delivered or dead-lettered.
package elasticsearchsink

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
)

// Config is the elasticsearch (and opensearch) sink's config.
type Config struct {
	// URLs of the cluster's nodes (or of a load balancer); requests go to <url>/_bulk
	// and fail over to the next URL when a node is unreachable or answers 5xx.
	URLs []string `yaml:"urls"`
	// Index is the index (or data stream) of each document: literal text with
	// {field.path} replaced by the document's value (lower-cased, characters an index
	// name cannot hold replaced by '_'; a missing event.dataset is the batch's
	// dataset, any other missing field "unknown") and %Y %m %d %H by its @timestamp in
	// UTC.
	Index string `yaml:"index"`
	// OpType is "index" (create or overwrite by _id) or "create" (required by data
	// streams; an existing _id answers 409, which counts as delivered).
	OpType string `yaml:"op_type"`
	// Auth authenticates to the cluster: username and password, or api_key, or
	// bearer_token.
	Auth Auth `yaml:"auth"`
	// TLS for https URLs.
	TLS config.ClientTLS `yaml:"tls"`
	// Compression of request bodies: gzip or none.
	Compression string `yaml:"compression"`
	// Batch bounds one bulk request.
	Batch Batch `yaml:"batch"`
	// MaxInFlight is the number of bulk requests under way at once; more waiting
	// events hold the stream back (backpressure) rather than pile up in memory.
	MaxInFlight int `yaml:"max_in_flight"`
	// Retry is the backoff between attempts at items that failed transiently.
	Retry Retry `yaml:"retry"`
	// RequestTimeout bounds one bulk request, response included.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// InstallTemplates puts composable index templates with ECS mappings before the
	// first delivery: vigil-<dataset> for each built-in dataset (apache.access,
	// aws.cloudfront_logs, aws.cloudtrail, aws.cloudwatch_logs, aws.elb_logs,
	// aws.vpcflow, nginx.access, syslog, vigil.alert) and vigil-ecs, with the shared
	// ECS fields, for any other dataset (priority 90, below Elasticsearch's own
	// logs-*-*). With op_type create the templates declare data streams. An index
	// without {event.dataset} gets vigil-ecs alone, with every dataset's fields.
	InstallTemplates bool `yaml:"install_templates"`
	// Headers are added to every request (e.g. VL-Time-Field for VictoriaLogs).
	Headers map[string]string `yaml:"headers"`
}

// Auth holds the cluster credentials; set at most one kind.
type Auth struct {
	Username    string `yaml:"username"`
	Password    string `yaml:"password" secret:"true"`
	APIKey      string `yaml:"api_key" secret:"true"`
	BearerToken string `yaml:"bearer_token" secret:"true"`
}

// Batch bounds one bulk request: it is sent when any limit is reached.
type Batch struct {
	// MaxBytes of action and document lines, before compression.
	MaxBytes config.ByteSize `yaml:"max_bytes"`
	// MaxEvents documents.
	MaxEvents int `yaml:"max_events"`
	// MaxWait after the first document was added.
	MaxWait time.Duration `yaml:"max_wait"`
}

// Retry is an exponential backoff with jitter.
type Retry struct {
	Initial time.Duration `yaml:"initial"`
	Max     time.Duration `yaml:"max"`
}

// DefaultIndex is the index template when none is configured.
const DefaultIndex = "logs-{event.dataset}-%Y.%m.%d"

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		URLs:           []string{"http://127.0.0.1:9200"},
		Index:          DefaultIndex,
		OpType:         "index",
		Compression:    "gzip",
		Batch:          Batch{MaxBytes: 5 << 20, MaxEvents: 5000, MaxWait: time.Second},
		MaxInFlight:    2,
		Retry:          Retry{Initial: 500 * time.Millisecond, Max: 30 * time.Second},
		RequestTimeout: 60 * time.Second,
	}
}

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	if len(c.URLs) == 0 {
		errs = append(errs, errors.New("urls: at least one URL is required"))
	}
	for i, raw := range c.URLs {
		if _, err := bulkURL(raw); err != nil {
			errs = append(errs, fmt.Errorf("urls[%d]: %w", i, err))
		}
	}
	if _, err := parseIndex(c.Index); err != nil {
		errs = append(errs, fmt.Errorf("index: %w", err))
	}
	switch c.OpType {
	case "index", "create":
	default:
		errs = append(errs, fmt.Errorf("op_type: want index or create, got %q", c.OpType))
	}
	kinds := 0
	if c.Auth.Username != "" || c.Auth.Password != "" {
		kinds++
		if c.Auth.Username == "" {
			errs = append(errs, errors.New("auth.username: required with auth.password"))
		}
	}
	if c.Auth.APIKey != "" {
		kinds++
	}
	if c.Auth.BearerToken != "" {
		kinds++
	}
	if kinds > 1 {
		errs = append(errs, errors.New("auth: set only one of username/password, api_key and bearer_token"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: set both cert_file and key_file"))
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
	if c.Retry.Initial < time.Millisecond {
		errs = append(errs, errors.New("retry.initial: must be at least 1ms"))
	}
	if c.Retry.Max < c.Retry.Initial {
		errs = append(errs, errors.New("retry.max: must be at least retry.initial"))
	}
	if c.RequestTimeout < 100*time.Millisecond {
		errs = append(errs, errors.New("request_timeout: must be at least 100ms"))
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			errs = append(errs, fmt.Errorf("headers: %q is not a header name", k))
		}
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Encoding", "Content-Length":
			errs = append(errs, fmt.Errorf("headers: %s is set by the sink", k))
		}
	}
	return errors.Join(errs...)
}

// bulkURL returns the _bulk endpoint under a base URL, keeping its query string
// (VictoriaLogs takes ingestion options there).
func bulkURL(raw string) (*url.URL, error) {
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
	return u.JoinPath("_bulk"), nil
}
