// Package esbulksource is the `elasticsearch_bulk` source: an Elasticsearch
// _bulk-compatible intake, so that shippers configured for Elasticsearch (Beats,
// Logstash, Fluent Bit, Vector, the official clients) can send to Vigil unchanged.
//
// Bulk: POST or PUT /_bulk and /{index}/_bulk take NDJSON action/metadata lines, each
// followed by a source line. The actions index and create store the source document
// as one raw record (format default json); update and delete are answered per item
// with status 400 (illegal_argument_exception): a log pipeline does not change
// stored events. A source line that is not a JSON object is answered per item with
// status 400 (mapper_parsing_exception, naming its line) and goes to the dead-letter
// stream; the rest of the request is stored. A malformed action line makes the whole
// request a 400, as in Elasticsearch, since the lines after it cannot be paired. The
// answer is Elasticsearch's bulk response ({"took","errors","items":[...]}), sent
// only after every document is stored (each item then 201 "created"), or an error
// status for the whole request: 429 with Retry-After when the intake stream is full,
// 503 with Retry-After when it is unavailable or the source is shutting down.
// Document ids in the answer are the action's _id or, without one, a random id as
// Elasticsearch generates; they are not stored (Vigil derives event IDs itself).
//
// With index_as_dataset, a document's index names its dataset: a data stream
// logs-<dataset>-<namespace> (or metrics-, traces-, synthetics-) gives <dataset>;
// another index gives its name without a trailing date (-2025.01.31 or -2025-01-31);
// a name that is no valid dataset leaves the source's dataset.
//
// Calls shippers make on connect or setup, answered so that they proceed:
//
//	GET / and HEAD /           cluster info, version.number 8.17.0, tagline
//	GET /_license, /_xpack     an active basic license, ILM available
//	GET /_cluster/health       green, one node
//	/_index_template/{name}, /_component_template/{name}, /_template/{name},
//	/_ilm/policy/{name}, /_ingest/pipeline/{name}, /_data_stream/{name}:
//	                           GET and HEAD 404 (not there), PUT, POST and DELETE
//	                           {"acknowledged":true}
//
// Every answer carries X-Elastic-Product: Elasticsearch, which the official clients
// check. Authentication is HTTP basic (users) or "Authorization: ApiKey <base64 of
// id:key>" (api_keys), both checked in constant time; failures are 401
// security_exception as Elasticsearch answers them.
package esbulksource

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/source/httpserver"
)

// DefaultMaxBodyBytes is Elasticsearch's default http.max_content_length.
const DefaultMaxBodyBytes = 100 << 20

// Config is the elasticsearch_bulk source's config.
type Config struct {
	// The default max_body_bytes is Elasticsearch's default http.max_content_length.
	// Each bulk request in flight may hold about twice its body in memory.
	httpserver.BoundedConfig `yaml:",inline"`
	// Users are the accepted HTTP basic credentials.
	Users []User `yaml:"users"`
	// APIKeys are the accepted API keys, each "id:api_key" or its base64 encoding
	// (the value clients send after "ApiKey ").
	APIKeys []string `yaml:"api_keys" secret:"true"`
	// IndexAsDataset makes each document's index its dataset (see the package doc).
	IndexAsDataset bool `yaml:"index_as_dataset"`
	// Version is the version.number answered on GET /; clients pick their protocol
	// from it.
	Version string `yaml:"version"`
}

// User is one basic-auth credential.
type User struct {
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	srv := httpserver.NewBoundedConfig("127.0.0.1:9200", 4)
	srv.MaxBodyBytes = DefaultMaxBodyBytes
	srv.ReadTimeout = 2 * time.Minute
	return &Config{BoundedConfig: srv, Version: "8.17.0"}
}

// DefaultFormat implements config.FormatDefaulter: documents are JSON objects.
func (c *Config) DefaultFormat() string { return "json" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	errs := []error{c.BoundedConfig.Validate(httpserver.Auth{
		Configured: len(c.Users) > 0 || len(c.APIKeys) > 0,
		Missing:    "neither users nor api_keys are set; set one",
	})}
	for i, u := range c.Users {
		if u.Username == "" || strings.Contains(u.Username, ":") {
			errs = append(errs, fmt.Errorf("users[%d].username: must be set and hold no ':'", i))
		}
		if u.Password == "" {
			errs = append(errs, fmt.Errorf("users[%d].password: empty", i))
		}
	}
	for i, k := range c.APIKeys {
		if _, err := apiKeyCredential(k); err != nil {
			errs = append(errs, fmt.Errorf("api_keys[%d]: %v", i, err))
		}
	}
	if !validVersion(c.Version) {
		errs = append(errs, fmt.Errorf("version: want major.minor.patch such as 8.17.0, got %q", c.Version))
	}
	return errors.Join(errs...)
}

// apiKeyCredential returns the "id:key" of a configured API key, given as such or
// base64-encoded. The error never quotes the key.
func apiKeyCredential(k string) (string, error) {
	if strings.Contains(k, ":") {
		id, key, _ := strings.Cut(k, ":")
		if id == "" || key == "" {
			return "", errors.New(`want "id:api_key" or its base64 encoding`)
		}
		return k, nil
	}
	raw, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		return "", errors.New(`want "id:api_key" or its base64 encoding; the value is neither`)
	}
	return apiKeyCredentialDecoded(string(raw))
}

func apiKeyCredentialDecoded(s string) (string, error) {
	id, key, ok := strings.Cut(s, ":")
	if !ok || id == "" || key == "" {
		return "", errors.New(`the base64 value does not decode to "id:api_key"`)
	}
	return s, nil
}

func validVersion(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}
