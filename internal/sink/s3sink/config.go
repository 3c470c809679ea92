package s3sink

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/awsconf"
	"github.com/vigil-sec/vigil/internal/config"
)

// Config is the s3 sink's config.
type Config struct {
	// Bucket receives the objects; it must exist.
	Bucket string `yaml:"bucket"`
	// ClientConfig is how the sink reaches S3: endpoint, region, addressing and
	// credentials.
	awsconf.ClientConfig `yaml:",inline"`
	// Key is the key prefix of each object: literal text with {event.dataset} (the
	// batch's dataset) and {sink} (this sink's name) replaced, and %Y %m %d %H %M by
	// the UTC stream time of the object's first batch. The object's name,
	// <epoch>-<min-seq>-<max-seq>.<ext> (the events stream's creation time in Unix
	// nanoseconds and the sequences it holds), is appended.
	Key string `yaml:"key"`
	// Encoding of objects: ndjson (one ECS JSON document per line, compressed) or
	// parquet (typed columns for common ECS fields plus a doc column with the whole
	// document).
	Encoding string `yaml:"encoding"`
	// Compression is gzip or zstd for ndjson; zstd, snappy, gzip or none (page
	// compression) for parquet. Empty: gzip for ndjson, zstd for parquet.
	Compression string `yaml:"compression"`
	// MaxBytes ends an object when its uncompressed documents reach this size.
	MaxBytes config.ByteSize `yaml:"max_bytes"`
	// MaxAge ends an object this long after it was opened, so data shows up quickly.
	// Keep it well below buffer.ack_wait: the object's batches are acknowledged only
	// after its upload.
	MaxAge time.Duration `yaml:"max_age"`
	// PartSize is the part size of multipart uploads; objects up to this size are
	// sent with one PutObject. S3 requires at least 5MiB.
	PartSize config.ByteSize `yaml:"part_size"`
	// UploadConcurrency is the number of objects uploaded at once; more ended
	// objects hold the stream back (backpressure) rather than pile up in memory.
	UploadConcurrency int `yaml:"upload_concurrency"`
	// SSE is the server-side encryption: none, AES256 (S3-managed keys) or aws:kms.
	SSE string `yaml:"sse"`
	// KMSKeyID is the KMS key for sse aws:kms; empty uses the bucket's default key.
	KMSKeyID string `yaml:"kms_key_id"`
	// StorageClass of the objects (STANDARD, STANDARD_IA, INTELLIGENT_TIERING,
	// GLACIER_IR…); empty leaves the bucket's default.
	StorageClass string `yaml:"storage_class"`
	// RequestTimeout bounds one S3 request (one part of a multipart upload).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Retry is the backoff between attempts at a failed upload or lookup.
	Retry Retry `yaml:"retry"`
	// ManifestPrefix is where the sink keeps one small manifest per object, listing
	// the stream sequences it holds; they make redelivery after a crash idempotent.
	// An S3 lifecycle rule may expire them after a few days.
	ManifestPrefix string `yaml:"manifest_prefix"`
}

// Retry is an exponential backoff with jitter.
type Retry struct {
	Initial time.Duration `yaml:"initial"`
	Max     time.Duration `yaml:"max"`
}

// DefaultKey is the key template when none is configured: Hive-style partitions
// that Athena, Glue and Spark read as columns.
const DefaultKey = "{event.dataset}/year=%Y/month=%m/day=%d/hour=%H/"

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		ClientConfig:      awsconf.ClientConfig{Region: awsconf.DefaultRegion},
		Key:               DefaultKey,
		Encoding:          "ndjson",
		MaxBytes:          128 << 20,
		MaxAge:            60 * time.Second,
		PartSize:          16 << 20,
		UploadConcurrency: 2,
		SSE:               "none",
		RequestTimeout:    60 * time.Second,
		Retry:             Retry{Initial: 500 * time.Millisecond, Max: 30 * time.Second},
		ManifestPrefix:    "_vigil/manifests/",
	}
}

// compression resolves the per-encoding default.
func (c *Config) compression() string {
	if c.Compression != "" {
		return c.Compression
	}
	if c.Encoding == "parquet" {
		return "zstd"
	}
	return "gzip"
}

// frameEncoding is the encoding of the event batch frames ndjson objects are made
// of, or "" for parquet.
func (c *Config) frameEncoding() string {
	if c.Encoding == "parquet" {
		return ""
	}
	return c.compression()
}

// FrameEncoding implements config.FrameSettings (processing.events_compression:
// auto): ndjson objects are gzip or zstd frames at the format's default level.
func (c *Config) FrameEncoding() (encoding string, level int) {
	enc := c.frameEncoding()
	return enc, ndjsonLevel(enc)
}

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket: required"))
	} else if len(c.Bucket) < 3 || len(c.Bucket) > 63 || strings.ContainsAny(c.Bucket, "/ ") {
		errs = append(errs, fmt.Errorf("bucket: %q is not a bucket name (3 to 63 characters, no '/')", c.Bucket))
	}
	if err := c.ClientConfig.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseKey(c.Key); err != nil {
		errs = append(errs, fmt.Errorf("key: %w", err))
	}
	switch c.Encoding {
	case "ndjson":
		switch c.compression() {
		case "gzip", "zstd":
		default:
			errs = append(errs, fmt.Errorf("compression: want gzip or zstd for ndjson, got %q", c.Compression))
		}
	case "parquet":
		switch c.compression() {
		case "zstd", "snappy", "gzip", "none":
		default:
			errs = append(errs, fmt.Errorf("compression: want zstd, snappy, gzip or none for parquet, got %q", c.Compression))
		}
	default:
		errs = append(errs, fmt.Errorf("encoding: want ndjson or parquet, got %q", c.Encoding))
	}
	if c.MaxBytes < 1<<10 {
		errs = append(errs, errors.New("max_bytes: must be at least 1KiB"))
	}
	if c.MaxAge < 100*time.Millisecond {
		errs = append(errs, errors.New("max_age: must be at least 100ms"))
	}
	if c.PartSize < 5<<20 {
		errs = append(errs, errors.New("part_size: must be at least 5MiB (the S3 minimum)"))
	}
	if c.UploadConcurrency < 1 || c.UploadConcurrency > 64 {
		errs = append(errs, fmt.Errorf("upload_concurrency: want 1 to 64, got %d", c.UploadConcurrency))
	}
	switch c.SSE {
	case "none", "":
		if c.KMSKeyID != "" {
			errs = append(errs, errors.New("kms_key_id: only with sse aws:kms"))
		}
	case "AES256":
		if c.KMSKeyID != "" {
			errs = append(errs, errors.New("kms_key_id: only with sse aws:kms"))
		}
	case "aws:kms":
	default:
		errs = append(errs, fmt.Errorf("sse: want none, AES256 or aws:kms, got %q", c.SSE))
	}
	if strings.ContainsAny(c.StorageClass, " /") {
		errs = append(errs, fmt.Errorf("storage_class: %q is not a storage class", c.StorageClass))
	}
	if c.RequestTimeout < 100*time.Millisecond {
		errs = append(errs, errors.New("request_timeout: must be at least 100ms"))
	}
	if c.Retry.Initial < time.Millisecond {
		errs = append(errs, errors.New("retry.initial: must be at least 1ms"))
	}
	if c.Retry.Max < c.Retry.Initial {
		errs = append(errs, errors.New("retry.max: must be at least retry.initial"))
	}
	if c.ManifestPrefix == "" || strings.HasPrefix(c.ManifestPrefix, "/") || !strings.HasSuffix(c.ManifestPrefix, "/") {
		errs = append(errs, fmt.Errorf("manifest_prefix: want a key prefix ending in '/', not starting with one, got %q", c.ManifestPrefix))
	}
	return errors.Join(errs...)
}
