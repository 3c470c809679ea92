// Package jsonparse is the `json` format (and `ndjson`, the same per record): each
// record is one JSON object, flattened into dotted leaves with its values copied
// verbatim, and its time read from a configurable field.
package jsonparse

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

// Config is the json format's options.
type Config struct {
	// TimestampField is the dotted path of the event time; empty disables it.
	TimestampField string `yaml:"timestamp_field"`
	// TimestampFormat is rfc3339 (default; any fractional precision and offset),
	// unix, unix_ms, unix_us, unix_ns, or a Go time layout such as
	// "02/Jan/2006:15:04:05 -0700".
	TimestampFormat string `yaml:"timestamp_format"`
}

// Validate implements parse.Config.
func (c *Config) Validate() error {
	if c.TimestampFormat == "" {
		return errors.New("timestamp_format: must not be empty (rfc3339, unix, unix_ms, unix_us, unix_ns or a Go layout)")
	}
	return nil
}

// Format returns the json format.
func Format() parse.Format {
	return parse.Format{
		Name:      "json",
		NewConfig: func() parse.Config { return &Config{TimestampField: "@timestamp", TimestampFormat: "rfc3339"} },
		New:       func(c parse.Config) (parse.Parser, error) { return New(c.(*Config)), nil },
	}
}

// NDJSONFormat returns the ndjson format: the same parser; the name says how the
// sources frame records (one object per line).
func NDJSONFormat() parse.Format {
	f := Format()
	f.Name = "ndjson"
	return f
}

// Parser parses JSON object records.
type Parser struct {
	cfg Config
	ev  event.Event
	key []byte
}

var _ parse.Parser = (*Parser)(nil)

// New returns a parser for cfg.
func New(cfg *Config) *Parser { return &Parser{cfg: *cfg} }

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	e := &p.ev
	e.Reset()
	s := scanner{data: rec}
	s.skipSpace()
	if s.pos >= len(rec) || rec[s.pos] != '{' {
		return fmt.Errorf("%w: %w", parse.ErrDecode, s.fail("expected a JSON object"))
	}
	p.key = p.key[:0]
	if err := p.flatten(&s, 0); err != nil {
		return fmt.Errorf("%w: %w", parse.ErrDecode, err)
	}
	s.skipSpace()
	if s.pos != len(rec) {
		return fmt.Errorf("%w: %w", parse.ErrDecode, s.fail("unexpected data after the JSON object"))
	}
	if p.cfg.TimestampField != "" {
		if v, ok := e.Get(p.cfg.TimestampField); ok {
			if t, ok := p.parseTime(v); ok {
				e.Time = t
			}
		}
	}
	return out.Emit(e)
}

// flatten adds the members of the object at s (positioned at '{') under p.key.
func (p *Parser) flatten(s *scanner, depth int) error {
	return s.object(depth+1, func(key []byte, escaped bool) error {
		n := len(p.key)
		if n > 0 {
			p.key = append(p.key, '.')
		}
		if escaped {
			p.key = append(p.key, unquoteKey(key)...)
		} else {
			p.key = append(p.key, key...)
		}
		s.skipSpace()
		var err error
		if s.pos < len(s.data) && s.data[s.pos] == '{' {
			objStart := s.pos
			before := len(p.ev.Fields)
			err = p.flatten(s, depth+1)
			if err == nil && len(p.ev.Fields) == before {
				// An empty object stays an empty object.
				p.ev.Add(string(p.key), event.Raw(s.data[objStart:s.pos]))
			}
		} else {
			var start, end int
			start, end, err = s.value(depth)
			if err == nil {
				p.ev.Add(string(p.key), event.Raw(s.data[start:end]))
			}
		}
		p.key = p.key[:n]
		return err
	})
}

func (p *Parser) parseTime(v event.Value) (time.Time, bool) {
	raw, ok := v.RawJSON()
	if !ok {
		return time.Time{}, false
	}
	var text string
	var num float64
	isNum := false
	if len(raw) > 0 && raw[0] == '"' {
		text = string(raw[1 : len(raw)-1])
	} else if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
		num, isNum = f, true
		text = string(raw)
	} else {
		return time.Time{}, false
	}
	switch p.cfg.TimestampFormat {
	case "rfc3339":
		t, err := time.Parse(time.RFC3339Nano, text)
		return t, err == nil
	case "unix", "unix_ms", "unix_us", "unix_ns":
		if !isNum {
			f, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return time.Time{}, false
			}
			num = f
		}
		scale := map[string]float64{"unix": 1e9, "unix_ms": 1e6, "unix_us": 1e3, "unix_ns": 1}[p.cfg.TimestampFormat]
		ns := num * scale
		if math.IsNaN(ns) || math.Abs(ns) > 9e18 {
			return time.Time{}, false
		}
		if i, err := strconv.ParseInt(text, 10, 64); err == nil && p.cfg.TimestampFormat == "unix_ns" {
			return time.Unix(0, i).UTC(), true
		}
		return time.Unix(0, int64(ns)).UTC(), true
	default:
		t, err := time.Parse(p.cfg.TimestampFormat, text)
		return t, err == nil
	}
}
