// Package jsonparse is the `json` format (and `ndjson`, the same per record): each
// record is one JSON object, flattened into dotted leaves with its values copied
// verbatim, and its time read from a configurable field.
package jsonparse

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
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
	if s.pos >= len(rec) {
		// As in the lines format: a blank line of an NDJSON file is no event, and no
		// error to dead-letter either (see parse.Emitter.Skip).
		out.Skip("blank_line")
		return nil
	}
	if rec[s.pos] != '{' {
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
			start, end, err = s.value(depth + 1) // the depth of the object holding it, as in scanner.object
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
		scale := unixScale(p.cfg.TimestampFormat)
		// Integers and plain decimals convert exactly: through a float64, a time in
		// milliseconds such as 1700000000123 would come out some 100ns off.
		if ns, ok := decimalNanos(text, scale); ok {
			return time.Unix(0, ns).UTC(), true
		}
		ns := num * float64(scale)
		if math.IsNaN(ns) || math.Abs(ns) > 9e18 {
			return time.Time{}, false
		}
		return time.Unix(0, int64(ns)).UTC(), true
	default:
		t, err := time.Parse(p.cfg.TimestampFormat, text)
		return t, err == nil
	}
}

// unixScale is the nanoseconds in one unit of a unix timestamp format.
func unixScale(format string) int64 {
	switch format {
	case "unix":
		return 1e9
	case "unix_ms":
		return 1e6
	case "unix_us":
		return 1e3
	}
	return 1
}

// decimalNanos converts text, a decimal number ("-12", "1700000000.123456") of units
// of scale nanoseconds each, to nanoseconds without rounding through a float; digits
// below a nanosecond are dropped. It reports false for other forms (exponents) and for
// values out of range, which the caller handles as floats.
func decimalNanos(text string, scale int64) (int64, bool) {
	neg := false
	if len(text) > 0 && text[0] == '-' {
		neg, text = true, text[1:]
	}
	intPart, frac, _ := strings.Cut(text, ".")
	if intPart == "" || len(intPart) > 19 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > math.MaxInt64/scale {
		return 0, false
	}
	n *= scale
	unit := scale
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		unit /= 10 // reaches 0 below a nanosecond
		if d := int64(c-'0') * unit; n > math.MaxInt64-d {
			return 0, false
		} else {
			n += d
		}
	}
	if neg {
		n = -n
	}
	return n, true
}
