// Package apacheparse parses Apache httpd access logs: the common, combined and
// vhost_combined LogFormats, detected per line, into ECS as the Filebeat apache module
// names them (dataset "apache.access").
package apacheparse

import (
	"bytes"
	"fmt"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/accesslog"
)

// Dataset is the event.dataset of Apache access events.
const Dataset = "apache.access"

// Config holds the apache format's options. It has none yet; the type exists so that
// format_options are checked (unknown keys rejected) like every other format's.
type Config struct{}

// Validate implements parse.Config.
func (*Config) Validate() error { return nil }

// Format describes the apache format.
func Format() parse.Format {
	return parse.Format{
		Name:      "apache",
		Dataset:   Dataset,
		NewConfig: func() parse.Config { return &Config{} },
		New: func(parse.Config) (parse.Parser, error) {
			return New(), nil
		},
	}
}

// Parser parses one access-log line per record. It reuses its event and scratch
// buffers between records, so it is not safe for concurrent use.
type Parser struct {
	ev   event.Event
	line accesslog.Line
	b    *accesslog.Builder
}

// New returns a Parser.
func New() *Parser { return &Parser{b: accesslog.NewBuilder("apache.access")} }

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	rec = bytes.TrimRight(rec, "\r\n")
	if len(bytes.TrimSpace(rec)) == 0 {
		out.Skip("blank_line")
		return nil
	}
	l := &p.line
	if err := accesslog.Scan(rec, l); err != nil {
		return fmt.Errorf("apache access log: %w", err)
	}
	e := &p.ev
	e.Reset()
	e.Dataset = Dataset

	client := l.Head
	// vhost_combined puts "%v:%p" before the client: "www.example.com:443 1.2.3.4".
	if sp := bytes.IndexByte(client, ' '); sp >= 0 {
		vhost := client[:sp]
		client = bytes.TrimLeft(client[sp+1:], " ")
		c := bytes.LastIndexByte(vhost, ':')
		if c <= 0 || bytes.IndexByte(client, ' ') >= 0 {
			return fmt.Errorf("apache access log: byte 0: client field %q is neither an address nor \"vhost:port address\"", l.Head)
		}
		port, ok := parsePort(vhost[c+1:])
		if !ok {
			return fmt.Errorf("apache access log: byte %d: invalid vhost port %q", c+1, vhost[c+1:])
		}
		e.Add("destination.domain", event.Bytes(vhost[:c]))
		e.Add("destination.port", event.Int(port))
	}
	p.b.Fill(e, l, accesslog.Client{Address: client})
	return out.Emit(e)
}

func parsePort(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= 65535
}
