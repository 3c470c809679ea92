package components_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/s3source"
)

// TestSeed002Example loads examples/seed-002-s3-opensearch.yaml as `vigil run` would.
func TestSeed002Example(t *testing.T) {
	t.Setenv("OPENSEARCH_PASSWORD", "example-password")
	cfg, err := config.Load("../../examples/seed-002-s3-opensearch.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 1 || cfg.Sources[0].Type != "s3" || cfg.Sources[0].Format != s3source.FormatAuto {
		t.Fatalf("sources: %+v", cfg.Sources)
	}
	s3 := cfg.Sources[0].Settings.(*s3source.Config)
	if s3.QueueURL == "" || len(s3.KeyRules) != 1 || s3.KeyRules[0].Format != "json" || !s3.BuiltinKeyRules {
		t.Errorf("s3 source: %+v", s3)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].Type != "opensearch" || len(cfg.Processing.Processors) != 2 {
		t.Errorf("sinks %+v, processors %+v", cfg.Sinks, cfg.Processing.Processors)
	}
}

// TestSeed001Example loads examples/seed-001-kelk.yaml as `vigil run` would, with
// only the variables it has no default for (e2e/seed001_test.go runs it).
func TestSeed001Example(t *testing.T) {
	t.Setenv("LOG_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/kelk-log-events")
	t.Setenv("ES_URL", "https://search.example.com")
	t.Setenv("ARCHIVE_BUCKET", "kelk-archive")
	cfg, err := config.Load("../../examples/seed-001-kelk.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 2 || len(cfg.Sinks) != 2 {
		t.Fatalf("sources %+v, sinks %+v", cfg.Sources, cfg.Sinks)
	}
	for _, src := range cfg.Sources {
		if s3, ok := src.Settings.(*s3source.Config); ok && (s3.BuiltinKeyRules || len(s3.KeyRules) != 4 || s3.Endpoint != "") {
			t.Errorf("s3 source: %+v", s3)
		}
	}
}

// TestS3SourceConfig: the s3 source's config as the docs show it, and its typo
// and range errors.
func TestS3SourceConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		err  string
	}{
		{name: "valid", yaml: `{type: s3, queue_url: http://127.0.0.1:5000/123456789012/log-events, endpoint: http://127.0.0.1:5000, region: us-east-1, format: auto, key_rules: [{match: "AWSLogs/*/elasticloadbalancing/**", format: alb}]}`},
		{name: "fixed format", yaml: `{type: s3, queue_url: https://sqs.us-east-1.amazonaws.com/1/q, format: alb}`},
		{name: "typo", yaml: `{type: s3, queue_url: https://sqs.us-east-1.amazonaws.com/1/q, key_rule: []}`, err: "key_rule"},
		{name: "no queue", yaml: `{type: s3}`, err: "queue_url: required"},
		{name: "rule without format", yaml: `{type: s3, queue_url: https://sqs.us-east-1.amazonaws.com/1/q, key_rules: [{match: "a/**"}]}`, err: "key_rules[0].format"},
		{name: "rule with unknown format", yaml: `{type: s3, queue_url: https://sqs.us-east-1.amazonaws.com/1/q, key_rules: [{match: "a/**", format: skip}, {match: "b/**", format: albb}]}`, err: `key_rules[1].format: unknown format "albb"`},
		{name: "auto with options", yaml: `{type: s3, queue_url: https://sqs.us-east-1.amazonaws.com/1/q, format_options: {}}`, err: "format_options"},
		{name: "long poll", yaml: `{type: s3, queue_url: https://sqs.us-east-1.amazonaws.com/1/q, wait_time: 30s}`, err: "wait_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := t.TempDir() + "/vigil.yaml"
			writeFile(t, file, "sources:\n  logs: "+tt.yaml+"\nsinks:\n  archive: {type: file_archive, inputs: [\"*\"]}\n")
			_, err := config.Load(file, components.Builtin())
			switch {
			case tt.err == "" && err != nil:
				t.Fatal(err)
			case tt.err != "" && (err == nil || !contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one about %q", err, tt.err)
			}
		})
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
