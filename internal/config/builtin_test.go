package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/esbulksource"
	"github.com/vigil-sec/vigil/internal/source/firehosesource"
	"github.com/vigil-sec/vigil/internal/source/hecsource"
	"github.com/vigil-sec/vigil/internal/source/httpserver"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
)

// These tests load configs with the real built-in components.

func TestBuiltinFull(t *testing.T) {
	cfg, err := config.Load("testdata/config_builtin_full.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	hs := cfg.Sources[0].Settings.(*httpsource.Config)
	if hs.Address != "0.0.0.0:8080" || hs.Tokens[0] != "dev-token" || hs.MaxBodyBytes != 5<<20 || hs.OnMalformed != "dlq" {
		t.Errorf("http source: %+v", hs)
	}
	if cfg.Sources[0].Format != "json" {
		t.Errorf("default format %q", cfg.Sources[0].Format)
	}
	as := cfg.Sinks[0].Settings.(*archivesink.Config)
	if as.MaxBytes != 32<<20 || as.CompressionLevel != 6 {
		t.Errorf("archive sink: %+v", as)
	}
	if red := config.Redacted(cfg); red.Sources[0].Settings.(*httpsource.Config).Tokens[0] != "<redacted>" {
		t.Errorf("http tokens not redacted")
	}
}

func TestBuiltinProblems(t *testing.T) {
	_, err := config.Load("testdata/config_builtin_open.yaml", components.Builtin())
	if err == nil {
		t.Fatal("loaded")
	}
	// Decoding problems come first, then the checks of everything that did decode, so
	// one run reports every problem. The size error's position is not pinned:
	// goccy/go-yaml places an error returned by a BytesUnmarshaler (ByteSize) at the
	// enclosing mapping (6:9), not at the value (8:21).
	lines := strings.Split(err.Error(), "\n")
	wantFirst := `sources.bulk: want a size such as 512KiB, 10MiB or 2GiB, got "[1]"`
	if !strings.HasPrefix(lines[0], "testdata/config_builtin_open.yaml:") || !strings.HasSuffix(lines[0], wantFirst) {
		t.Errorf("first problem: got %q, want …%s", lines[0], wantFirst)
	}
	for _, want := range []string{
		"testdata/config_builtin_open.yaml:4:5: sources.web.address: 0.0.0.0:8080 is reachable from other machines",
		"testdata/config_builtin_open.yaml:13:5: sources.lan.tokens[0]: empty token",
		"testdata/config_builtin_open.yaml:18:5: sinks.archive.compression_level: want 1 to 9, got 10",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
}

func TestBuiltinNonLoopbackWithoutTokens(t *testing.T) {
	yaml := `
sources:
  web:
    type: http
    address: 0.0.0.0:8080
  lan:
    type: http
    address: "[::]:8082"
    allow_unauthenticated: true
    tokens: [" "]
  local:
    type: http
    address: localhost:8083
sinks:
  archive:
    type: file_archive
    inputs: ["*"]
    compression_level: 10
`
	_, err := config.Parse([]byte(yaml), "inline.yaml", components.Builtin())
	if err == nil {
		t.Fatal("loaded")
	}
	lines := strings.Split(err.Error(), "\n")
	wantPrefixes := []string{
		"inline.yaml:5:5: sources.web.address: 0.0.0.0:8080 is reachable from other machines but ",
		"inline.yaml:10:5: sources.lan.tokens[0]: empty token",
		"inline.yaml:18:5: sinks.archive.compression_level: want 1 to 9, got 10",
	}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(wantPrefixes), err)
	}
	for i, w := range wantPrefixes {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d: got %q, want prefix %q", i, lines[i], w)
		}
	}
}

// The HTTP sources take their server settings as an embedded struct decoded inline:
// its keys are the source's own, unset ones keep the source's defaults, and the
// unknown-key check still sees them.
func TestBuiltinHTTPServerKeys(t *testing.T) {
	yaml := `
sources:
  web:
    type: http
    address: 0.0.0.0:8080
    allow_unauthenticated: true
    max_body_bytes: 2MiB
    tls: {cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem}
    read_timeout: 7s
    retry_after: 3s
  fh:
    type: firehose
    address: 127.0.0.1:8443
    max_in_flight: 3
    retry_after: 9s
  splunk:
    type: hec
    tokens: [t]
    read_timeout: 11s
  es:
    type: elasticsearch_bulk
    max_body_bytes: 1MiB
sinks:
  archive:
    type: file_archive
    inputs: ["*"]
`
	cfg, err := config.Parse([]byte(yaml), "inline.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]config.Component{}
	for _, s := range cfg.Sources {
		settings[s.Name] = s.Settings
	}
	web := settings["web"].(*httpsource.Config).Config
	wantWeb := httpserver.Config{Address: "0.0.0.0:8080", AllowUnauthenticated: true, MaxBodyBytes: 2 << 20,
		TLS:         config.ServerTLS{CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"},
		ReadTimeout: 7 * time.Second, RetryAfter: 3 * time.Second}
	if web != wantWeb {
		t.Errorf("http: got %+v, want %+v", web, wantWeb)
	}
	fh := settings["fh"].(*firehosesource.Config).BoundedConfig
	wantFH := firehosesource.NewConfig().BoundedConfig
	wantFH.MaxInFlight, wantFH.RetryAfter = 3, 9*time.Second
	if fh != wantFH {
		t.Errorf("firehose: got %+v, want %+v", fh, wantFH)
	}
	hec := settings["splunk"].(*hecsource.Config)
	wantHEC := hecsource.NewConfig().BoundedConfig
	wantHEC.ReadTimeout = 11 * time.Second
	if hec.BoundedConfig != wantHEC || len(hec.Tokens) != 1 {
		t.Errorf("hec: got %+v, want %+v", hec.BoundedConfig, wantHEC)
	}
	es := settings["es"].(*esbulksource.Config).BoundedConfig
	wantES := esbulksource.NewConfig().BoundedConfig
	wantES.MaxBodyBytes = 1 << 20
	if es != wantES {
		t.Errorf("elasticsearch_bulk: got %+v, want %+v", es, wantES)
	}

	// max_in_flight belongs to the bounded sources only; a typo is still caught.
	_, err = config.Parse([]byte(`
sources:
  web:
    type: http
    max_in_flight: 4
  fh:
    type: firehose
    max_in_flite: 4
sinks:
  archive:
    type: file_archive
    inputs: ["*"]
`), "typo.yaml", components.Builtin())
	for _, want := range []string{
		`typo.yaml:5:5: sources.web: unknown field "max_in_flight"`,
		`typo.yaml:8:5: sources.fh: unknown field "max_in_flite"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
