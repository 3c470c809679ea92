package s3sink_test

import (
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/sink/s3sink"
)

// These tests load the s3 sink's keys through the real config loader: the AWS
// client keys are inline (awsconf.ClientConfig), at the sink's own level.

func TestConfigFile(t *testing.T) {
	t.Setenv("VIGIL_TEST_S3_SECRET", "s3cr3t")
	cfg, err := config.Load("testdata/config_s3.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Sinks[0].Settings.(*s3sink.Config)
	if c.Bucket != "security-archive" || c.Endpoint != "http://minio.internal:9000" || c.Region != "eu-west-1" ||
		c.PathStyle() || c.AccessKeyID != "AKIAEXAMPLE" || c.SecretAccessKey != "s3cr3t" ||
		c.RoleARN != "arn:aws:iam::123456789012:role/vigil-archive" || c.ExternalID != "tenant-42" ||
		c.RoleSessionName != "vigil-node-1" || c.Encoding != "parquet" {
		t.Errorf("s3 sink: %+v", c)
	}
	if c.MaxAge != s3sink.NewConfig().MaxAge {
		t.Errorf("max_age %v: the defaults should survive decoding", c.MaxAge)
	}
	red := config.Redacted(cfg).Sinks[0].Settings.(*s3sink.Config)
	if red.SecretAccessKey != "<redacted>" || red.AccessKeyID != "AKIAEXAMPLE" {
		t.Errorf("redacted: %+v", red.ClientConfig)
	}
	if c.SecretAccessKey != "s3cr3t" {
		t.Error("Redacted changed the config it was given")
	}
}

func TestConfigFileProblems(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/config_s3_typo.yaml", []string{
			`testdata/config_s3_typo.yaml:10:5: sinks.archive: unknown field "role_ar"`,
		}},
		{"testdata/config_s3_invalid.yaml", []string{
			`testdata/config_s3_invalid.yaml:10:5: sinks.archive.endpoint: want an http or https URL`,
			`testdata/config_s3_invalid.yaml:12:5: sinks.archive.role_arn: want an IAM role ARN`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := config.Load(tt.file, components.Builtin())
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing problem %q in:\n%v", w, err)
				}
			}
		})
	}
}
