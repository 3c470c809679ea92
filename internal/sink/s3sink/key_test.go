package s3sink

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestKeyTemplate(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name, give, want, err string
	}{
		{name: "default", give: DefaultKey, want: "aws.alb/year=2026/month=01/day=02/hour=02/"},
		{name: "sink and minute", give: "raw/{sink}/{event.dataset}/%Y%m%d%H%M-", want: "raw/lake/aws.alb/202601020204-"},
		{name: "literal only", give: "archive/", want: "archive/"},
		{name: "unknown field", give: "{source.ip}/", err: "unknown field {source.ip}"},
		{name: "unclosed", give: "{event.dataset/", err: "unclosed '{'"},
		{name: "bad verb", give: "%S/", err: "unknown time verb"},
		{name: "absolute", give: "/x/", err: "must not start with '/'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := parseKey(tt.give)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := k.render("aws.alb", "lake", at); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSeqs(t *testing.T) {
	tests := []struct {
		give []uint64
		want string
	}{
		{nil, ""},
		{[]uint64{5}, "5"},
		{[]uint64{1, 2, 3, 5, 7, 8}, "1-3,5,7-8"},
		{[]uint64{18446744073709551614, 18446744073709551615}, "18446744073709551614-18446744073709551615"},
	}
	for _, tt := range tests {
		got := formatSeqs(tt.give)
		if got != tt.want {
			t.Errorf("formatSeqs(%v) = %q, want %q", tt.give, got, tt.want)
		}
		back, err := parseSeqs(got)
		if err != nil || !slices.Equal(back, tt.give) {
			t.Errorf("parseSeqs(%q) = %v, %v", got, back, err)
		}
	}
	for _, bad := range []string{"x", "5-3", "1-", "3,1", "0-99999999999"} {
		if _, err := parseSeqs(bad); err == nil {
			t.Errorf("parseSeqs(%q) succeeded", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() *Config {
		c := NewConfig()
		c.Bucket = "security-archive"
		c.Endpoint = "http://127.0.0.1:7070"
		return c
	}
	tests := []struct {
		name   string
		modify func(*Config)
		err    string
	}{
		{name: "defaults with bucket", modify: func(*Config) {}},
		{name: "parquet", modify: func(c *Config) { c.Encoding = "parquet" }},
		{name: "no bucket", modify: func(c *Config) { c.Bucket = "" }, err: "bucket: required"},
		{name: "bad endpoint", modify: func(c *Config) { c.Endpoint = "ftp://x" }, err: "endpoint: want an http or https URL"},
		{name: "half credentials", modify: func(c *Config) { c.AccessKeyID = "AKIA" }, err: "access_key_id: set both"},
		{name: "bad role", modify: func(c *Config) { c.RoleARN = "vigil" }, err: "role_arn: want an IAM role ARN"},
		{name: "bad encoding", modify: func(c *Config) { c.Encoding = "csv" }, err: "encoding: want ndjson or parquet"},
		{name: "snappy ndjson", modify: func(c *Config) { c.Compression = "snappy" }, err: "compression: want gzip or zstd"},
		{name: "small part", modify: func(c *Config) { c.PartSize = 1 << 20 }, err: "part_size: must be at least 5MiB"},
		{name: "kms key without kms", modify: func(c *Config) { c.SSE = "AES256"; c.KMSKeyID = "k" }, err: "kms_key_id: only with sse aws:kms"},
		{name: "bad sse", modify: func(c *Config) { c.SSE = "aes" }, err: "sse: want none, AES256 or aws:kms"},
		{name: "bad key", modify: func(c *Config) { c.Key = "{host.name}/" }, err: "key: unknown field"},
		{name: "bad manifest prefix", modify: func(c *Config) { c.ManifestPrefix = "_vigil" }, err: "manifest_prefix:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(c)
			err := c.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}
