package syslogsource_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*syslogsource.Config)
		want   string // substring of the error; empty for valid
	}{
		{name: "tcp only", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:5514" }},
		{name: "udp only", mutate: func(c *syslogsource.Config) { c.UDP = "[::1]:5514" }},
		{name: "open tcp refused", mutate: func(c *syslogsource.Config) { c.TCP = "0.0.0.0:514" }, want: "tcp: 0.0.0.0:514 is reachable from other machines"},
		{name: "open udp refused", mutate: func(c *syslogsource.Config) { c.UDP = ":514" }, want: "udp: :514 is reachable"},
		{name: "open allowed", mutate: func(c *syslogsource.Config) { c.TCP, c.UDP, c.AllowUnauthenticated = ":514", ":514", true }},
		{name: "open tls with client certificates", mutate: func(c *syslogsource.Config) {
			c.TCP = "0.0.0.0:6514"
			c.TLS = config.ServerTLS{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}
		}},
		{name: "open tls without client certificates", mutate: func(c *syslogsource.Config) {
			c.TCP = "0.0.0.0:6514"
			c.TLS = config.ServerTLS{CertFile: "c", KeyFile: "k"}
		}, want: "tcp: 0.0.0.0:6514 is reachable"},
		{name: "no listener", mutate: func(*syslogsource.Config) {}, want: "tcp: set tcp, udp or both"},
		{name: "bad tcp address", mutate: func(c *syslogsource.Config) { c.TCP = "5514" }, want: `tcp: want host:port, got "5514"`},
		{name: "bad udp address", mutate: func(c *syslogsource.Config) { c.UDP = "localhost" }, want: "udp: want host:port"},
		{name: "tls without key", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:6514"; c.TLS.CertFile = "c.pem" }, want: "tls: set both cert_file and key_file"},
		{name: "client ca alone", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:6514"; c.TLS.ClientCAFile = "ca.pem" }, want: "tls.client_ca_file: needs cert_file"},
		{name: "tls without tcp", mutate: func(c *syslogsource.Config) {
			c.UDP = "127.0.0.1:514"
			c.TLS = config.ServerTLS{CertFile: "c", KeyFile: "k"}
		}, want: "tls: applies to the tcp listener"},
		{name: "tiny messages", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:1"; c.MaxMessageBytes = 100 }, want: "max_message_bytes: want 480 to 524288"},
		{name: "huge messages", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:1"; c.MaxMessageBytes = 1 << 20 }, want: "max_message_bytes"},
		{name: "idle", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:1"; c.IdleTimeout = 0 }, want: "idle_timeout: must be positive"},
		{name: "connections", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:1"; c.MaxConnections = 0 }, want: "max_connections: must be at least 1"},
		{name: "batch records", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:1"; c.BatchMaxRecords = 0 }, want: "batch_max_records"},
		{name: "batch wait", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:1"; c.BatchMaxWait = time.Minute }, want: "batch_max_wait"},
		{name: "zero batch wait is fine", mutate: func(c *syslogsource.Config) { c.TCP = "127.0.0.1:1"; c.BatchMaxWait = 0 }},
		{name: "udp buffer", mutate: func(c *syslogsource.Config) { c.UDP = "127.0.0.1:1"; c.UDPReadBuffer = -1 }, want: "udp_read_buffer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := syslogsource.NewConfig()
			tt.mutate(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("want an error containing %q, got %v", tt.want, err)
			}
		})
	}
}

func TestConfigLoad(t *testing.T) {
	cfg, err := config.Load("testdata/config_syslog.yaml", registry())
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := cfg.Source("syslog")
	if plain.Format != "syslog" || plain.Dataset != "" {
		t.Errorf("format %q dataset %q", plain.Format, plain.Dataset)
	}
	p := plain.Settings.(*syslogsource.Config)
	want := syslogsource.NewConfig()
	want.TCP, want.UDP = "127.0.0.1:5514", "127.0.0.1:5514"
	if *p != *want {
		t.Errorf("plain: got %+v, want %+v", *p, *want)
	}
	tlsSrc, _ := cfg.Source("syslog_tls")
	if tlsSrc.Format != "syslog" {
		t.Errorf("default format: %q", tlsSrc.Format)
	}
	s := tlsSrc.Settings.(*syslogsource.Config)
	if s.TLS.ClientCAFile != "/etc/vigil/clients-ca.pem" || s.MaxMessageBytes != 128<<10 || s.IdleTimeout != time.Minute ||
		s.MaxConnections != 50 || s.BatchMaxRecords != 500 || s.BatchMaxWait != 20*time.Millisecond || s.UDPReadBuffer != 8<<20 {
		t.Errorf("tls source: %+v", *s)
	}

	for file, wants := range map[string][]string{
		"config_typo.yaml":    {`5:5: sources.syslog: unknown field "max_mesage_bytes"`},
		"config_invalid.yaml": {"sources.syslog", "tcp: set tcp, udp or both", "max_message_bytes: want 480", "idle_timeout: must be positive"},
	} {
		_, err := config.Load("testdata/"+file, registry())
		for _, w := range wants {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: want an error containing %q, got %v", file, w, err)
			}
		}
	}
}
