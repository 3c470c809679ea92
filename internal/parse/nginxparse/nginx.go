// Package nginxparse parses nginx access logs in the default "combined" log_format,
// tolerating the trailing "$http_x_forwarded_for" field (the "main" format of the
// stock nginx.conf) and X-Forwarded-For style address lists in the client field, into
// ECS as the Filebeat nginx module names them (dataset "nginx.access").
package nginxparse

import (
	"bytes"
	"fmt"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/accesslog"
)

// Dataset is the event.dataset of nginx access events.
const Dataset = "nginx.access"

// maxAddrs bounds the client address list; longer lists keep their first entries.
const maxAddrs = 32

// Config holds the nginx format's options. It has none yet; the type exists so that
// format_options are checked (unknown keys rejected) like every other format's.
type Config struct{}

// Validate implements parse.Config.
func (*Config) Validate() error { return nil }

// Format describes the nginx format.
func Format() parse.Format {
	return parse.Format{
		Name:      "nginx",
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
	ev    event.Event
	line  accesslog.Line
	b     *accesslog.Builder
	addrs [][]byte
}

// New returns a Parser.
func New() *Parser { return &Parser{b: accesslog.NewBuilder("nginx.access")} }

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	rec = bytes.TrimRight(rec, "\r\n")
	if len(bytes.TrimSpace(rec)) == 0 {
		out.Skip("blank_line")
		return nil
	}
	l := &p.line
	if err := accesslog.Scan(rec, l); err != nil {
		return fmt.Errorf("nginx access log: %w", err)
	}
	e := &p.ev
	e.Reset()
	e.Dataset = Dataset

	// The client field may be a list: "10.0.0.2, 10.0.0.1, 127.0.0.1" or
	// "\"xff list\" remote_addr" when log_format puts $http_x_forwarded_for first.
	// As the Filebeat module does, the client is the first public address, else the
	// first entry.
	p.addrs = p.addrs[:0]
	h := l.Head
	for len(h) > 0 && len(p.addrs) < maxAddrs {
		i := 0
		for i < len(h) && (h[i] == ' ' || h[i] == ',' || h[i] == '"') {
			i++
		}
		j := i
		for j < len(h) && h[j] != ' ' && h[j] != ',' && h[j] != '"' {
			j++
		}
		if j > i {
			p.addrs = append(p.addrs, h[i:j])
		}
		h = h[j:]
	}
	if len(p.addrs) == 0 {
		return fmt.Errorf("nginx access log: byte 0: empty client address")
	}
	client := p.addrs[0]
	if len(p.addrs) > 1 {
		for _, a := range p.addrs {
			if accesslog.IsPublicIP(a) {
				client = a
				break
			}
		}
	}
	c := accesslog.Client{Address: client, List: p.addrs}
	// "unix:" is the peer of a Unix-socket listener, not an address list entry.
	if bytes.Equal(client, []byte("unix:")) {
		c.List = nil
	}
	p.b.Fill(e, l, c)
	return out.Emit(e)
}
