// Package syslogsource is the `syslog` source: RFC 5424 and RFC 3164 messages over UDP,
// TCP and TLS. It frames messages (newline or RFC 6587 octet counting, detected per
// message) and stores each one as one raw record; the `syslog` format parses them in
// processing.
//
// Delivery: syslog has no acknowledgements, so the source's promise is flow control.
// Over TCP a connection is not read while its framed messages are not stored: the
// sender's TCP window fills and it blocks (backpressure), and nothing read is dropped.
// UDP cannot push back: a batch the stream does not take is counted as discarded
// (reason udp_stream_unavailable) and logged.
package syslogsource

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
)

// Limits of max_message_bytes. RFC 5424 section 6.1 asks receivers to take at least
// 2048 bytes; the upper bound keeps one message well inside one intake batch and one
// dead letter inside the stream's max payload.
const (
	minMessageBytes = 480
	maxMessageBytes = 512 << 10
)

// Config is the syslog source's config.
type Config struct {
	// TCP is the host:port of the TCP listener (TLS when tls is set); empty: none.
	TCP string `yaml:"tcp"`
	// UDP is the host:port of the UDP listener; empty: none.
	UDP string `yaml:"udp"`
	// TLS, when cert_file and key_file are set, makes the tcp listener TLS-only
	// (RFC 5425). For plain TCP beside TLS, configure a second syslog source.
	TLS config.ServerTLS `yaml:"tls"`
	// AllowUnauthenticated permits listening on a non-loopback address without TLS
	// client certificates (tls.client_ca_file): anyone who reaches the port can then
	// write into the pipeline. Most syslog senders cannot authenticate, so this is
	// the usual setting behind a firewall; it must be said explicitly.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// MaxMessageBytes is the largest message kept whole. A longer one is cut to this
	// size and sent to the dead-letter stream (stage intake, reason naming its size),
	// never stored as a record; the rest of it is skipped.
	MaxMessageBytes config.ByteSize `yaml:"max_message_bytes"`
	// IdleTimeout closes a TCP connection that sent nothing for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConnections bounds open TCP connections; one more is closed at once.
	MaxConnections int `yaml:"max_connections"`
	// BatchMaxRecords and BatchMaxWait bound a batch: records are stored together once
	// there are this many, or this long after the first of them was read (per TCP
	// connection; across datagrams for UDP). A batch is also cut at about 900 KiB.
	BatchMaxRecords int           `yaml:"batch_max_records"`
	BatchMaxWait    time.Duration `yaml:"batch_max_wait"`
	// UDPReadBuffer is the socket receive buffer asked of the kernel (SO_RCVBUF); it
	// absorbs bursts while a batch is being stored. The kernel caps it at
	// net.core.rmem_max. 0 keeps the system default.
	UDPReadBuffer config.ByteSize `yaml:"udp_read_buffer"`
}

// NewConfig returns the defaults. No listener is set: at least one of tcp and udp
// must be.
func NewConfig() *Config {
	return &Config{
		MaxMessageBytes: 64 << 10,
		IdleTimeout:     5 * time.Minute,
		MaxConnections:  1000,
		BatchMaxRecords: 1000,
		BatchMaxWait:    5 * time.Millisecond,
		UDPReadBuffer:   4 << 20,
	}
}

// DefaultFormat implements config.FormatDefaulter.
func (c *Config) DefaultFormat() string { return "syslog" }

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	if c.TCP == "" && c.UDP == "" {
		errs = append(errs, errors.New("tcp: set tcp, udp or both (host:port, e.g. 127.0.0.1:5514)"))
	}
	for _, a := range []struct{ name, addr string }{{"tcp", c.TCP}, {"udp", c.UDP}} {
		if a.addr == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a.addr)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: want host:port, got %q", a.name, a.addr))
		case !c.AllowUnauthenticated && !config.IsLoopback(host) && (a.name == "udp" || c.TLS.ClientCAFile == ""):
			errs = append(errs, fmt.Errorf("%s: %s is reachable from other machines and syslog has no authentication; set allow_unauthenticated: true to accept messages from anyone who can reach it (firewall it), or for tcp use tls with client_ca_file", a.name, a.addr))
		}
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.TLS.CertFile != "" && c.TCP == "" {
		errs = append(errs, errors.New("tls: applies to the tcp listener; set tcp"))
	}
	if c.MaxMessageBytes < minMessageBytes || c.MaxMessageBytes > maxMessageBytes {
		errs = append(errs, fmt.Errorf("max_message_bytes: want %d to %d bytes (512KiB), got %d", minMessageBytes, maxMessageBytes, c.MaxMessageBytes))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("idle_timeout: must be positive"))
	}
	if c.MaxConnections < 1 {
		errs = append(errs, errors.New("max_connections: must be at least 1"))
	}
	if c.BatchMaxRecords < 1 || c.BatchMaxRecords > 100000 {
		errs = append(errs, fmt.Errorf("batch_max_records: want 1 to 100000, got %d", c.BatchMaxRecords))
	}
	if c.BatchMaxWait < 0 || c.BatchMaxWait > 10*time.Second {
		errs = append(errs, fmt.Errorf("batch_max_wait: want 0 to 10s, got %s", c.BatchMaxWait))
	}
	if c.UDPReadBuffer < 0 || c.UDPReadBuffer > 1<<30 {
		errs = append(errs, fmt.Errorf("udp_read_buffer: want 0 to 1GiB, got %d", c.UDPReadBuffer))
	}
	return errors.Join(errs...)
}
