// Package linesparse is the `lines` format: each record is one line of text that
// becomes the event's message.
package linesparse

import (
	"bytes"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

// Format returns the lines format.
func Format() parse.Format {
	return parse.Format{
		Name:      "lines",
		NewConfig: func() parse.Config { return &parse.NoConfig{} },
		New:       func(parse.Config) (parse.Parser, error) { return &Parser{}, nil },
	}
}

// Parser makes one event with a message per record.
type Parser struct{ ev event.Event }

// Parse implements parse.Parser. A blank record is skipped, not an event.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	rec = bytes.TrimRight(rec, "\r\n")
	if len(bytes.TrimSpace(rec)) == 0 {
		out.Skip("blank_line")
		return nil
	}
	p.ev.Reset()
	p.ev.Set("message", event.Bytes(rec))
	return out.Emit(&p.ev)
}
