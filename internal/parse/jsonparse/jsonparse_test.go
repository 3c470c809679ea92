package jsonparse

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

func defaults() *Config {
	return Format().NewConfig().(*Config)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"flat", `{"message":"hi","n":1}`, `{"message":"hi","n":1}`},
		{"nested flattened and re-nested sorted", `{"z":{"b":2,"a":1},"a":true}`, `{"a":true,"z":{"a":1,"b":2}}`},
		{"dotted keys merge with objects", `{"source.ip":"1.2.3.4","source":{"port":80}}`, `{"source":{"ip":"1.2.3.4","port":80}}`},
		{"values verbatim", `{"f":1.50,"e":1E+2,"s":"\u00e9\n","n":null,"b":false}`, `{"b":false,"e":1E+2,"f":1.50,"n":null,"s":"\u00e9\n"}`},
		{"arrays kept raw", `{"tags":["a", {"b":1}, [ ]]}`, `{"tags":["a", {"b":1}, [ ]]}`},
		{"empty object kept", `{"a":{},"b":{"c":{ }}}`, `{"a":{},"b":{"c":{ }}}`},
		{"empty top-level object", ` {} `, `{}`},
		{"escaped key", `{"a\"b":1,"\u0063":2,"x\\y":3}`, `{"a\"b":1,"c":2,"x\\y":3}`},
		{"escaped key with dot", `{"a\u002eb":1}`, `{"a":{"b":1}}`},
		{"duplicate keys keep last", `{"a":1,"a":2}`, `{"a":2}`},
		{"scalar and object at one key", `{"a":1,"a":{"b":2}}`, `{"a":{"value":1,"b":2}}`},
		{"explicit value wins", `{"a":1,"a":{"value":2}}`, `{"a":{"value":2}}`},
		{"whitespace inside", "{ \"a\" :\t{ \"b\" : 1 } ,\r\n\"c\":2 }", `{"a":{"b":1},"c":2}`},
		{"unicode separators in values stay", "{\"a\":\"x\u2028y\"}", "{\"a\":\"x\u2028y\"}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c parsetest.Collector
			if err := New(defaults()).Parse([]byte(tt.give), &c); err != nil {
				t.Fatal(err)
			}
			if len(c.Docs) != 1 {
				t.Fatalf("%d events", len(c.Docs))
			}
			if got := string(c.Docs[0]); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{"array", `[{"a":1}]`, "decode: invalid JSON at byte 0: expected a JSON object"},
		{"string", `"x"`, "decode: invalid JSON at byte 0: expected a JSON object"},
		{"truncated", `{"a":1`, "decode: invalid JSON at byte 6: unexpected end of input in object"},
		{"trailing data", `{"a":1} {"b":2}`, "decode: invalid JSON at byte 8: unexpected data after the JSON object"},
		{"bad nested value", `{"a":{"b":tru}}`, "decode: invalid JSON at byte 10: bad literal, expected true"},
		{"invalid utf8 in key", "{\"\xff\":1}", "decode: invalid JSON at byte 2: invalid UTF-8 in string"},
		{"too deep", strings.Repeat(`{"a":`, 129) + "1" + strings.Repeat("}", 129), "decode: invalid JSON at byte 640: nesting deeper than 128 levels"},
		{"too deep in array", `{"a":` + strings.Repeat("[", 128) + strings.Repeat("]", 128) + "}", "decode: invalid JSON at byte 132: nesting deeper than 128 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c parsetest.Collector
			err := New(defaults()).Parse([]byte(tt.give), &c)
			if err == nil {
				t.Fatalf("no error; events %s", c.Docs)
			}
			if !errors.Is(err, parse.ErrDecode) {
				t.Errorf("%v does not wrap parse.ErrDecode", err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("%v does not wrap a *SyntaxError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("err = %q, want %q", err, tt.want)
			}
			if len(c.Docs) != 0 {
				t.Errorf("emitted %d events before failing", len(c.Docs))
			}
		})
	}
}

func TestParseBlank(t *testing.T) {
	for _, give := range []string{"", " ", "\t\r\n "} {
		var c parsetest.Collector
		if err := New(defaults()).Parse([]byte(give), &c); err != nil {
			t.Errorf("Parse(%q) = %v, want a skip", give, err)
		}
		if len(c.Docs) != 0 || c.Skipped["blank_line"] != 1 {
			t.Errorf("Parse(%q): %d events, skipped %v", give, len(c.Docs), c.Skipped)
		}
	}
}

type failEmitter struct{ err error }

func (f failEmitter) Emit(*event.Event) error { return f.err }
func (failEmitter) Reject([]byte, error)      {}
func (failEmitter) Skip(string)               {}

func TestParseReturnsEmitError(t *testing.T) {
	boom := errors.New("boom")
	if err := New(defaults()).Parse([]byte(`{}`), failEmitter{boom}); err != boom {
		t.Errorf("err = %v, want the emitter's error unchanged", err)
	}
}

// A parser is reused for every record of a source: nothing of one record may leak
// into the next, and records must not be retained.
func TestParseReuse(t *testing.T) {
	p := New(defaults())
	var c parsetest.Collector
	rec := []byte(`{"a":{"b":1},"@timestamp":"2024-01-01T00:00:00Z"}`)
	if err := p.Parse(rec, &c); err != nil {
		t.Fatal(err)
	}
	_ = p.Parse([]byte(`{"a":`), &c)
	if err := p.Parse([]byte(`{"c":2}`), &c); err != nil {
		t.Fatal(err)
	}
	if got := string(c.Docs[1]); got != `{"c":2}` {
		t.Errorf("second event = %s", got)
	}
	if !p.ev.Time.IsZero() {
		t.Errorf("time leaked from the first record: %v", p.ev.Time)
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		name, field, format, give string
		want                      string // RFC3339Nano UTC; "" for no time
	}{
		{"rfc3339", "@timestamp", "rfc3339", `"2024-05-06T07:08:09Z"`, "2024-05-06T07:08:09Z"},
		{"rfc3339 nanos", "@timestamp", "rfc3339", `"2024-05-06T07:08:09.123456789Z"`, "2024-05-06T07:08:09.123456789Z"},
		{"rfc3339 millis offset", "@timestamp", "rfc3339", `"2024-05-06T07:08:09.5+02:00"`, "2024-05-06T05:08:09.5Z"},
		{"rfc3339 negative offset", "@timestamp", "rfc3339", `"2024-05-06T23:30:00-05:30"`, "2024-05-07T05:00:00Z"},
		{"rfc3339 garbage", "@timestamp", "rfc3339", `"yesterday"`, ""},
		{"rfc3339 number", "@timestamp", "rfc3339", `1700000000`, ""},
		{"rfc3339 object", "@timestamp", "rfc3339", `{"x":1}`, ""},
		{"unix", "ts", "unix", `1700000000`, "2023-11-14T22:13:20Z"},
		{"unix fraction", "ts", "unix", `1700000000.123456789`, "2023-11-14T22:13:20.123456789Z"},
		{"unix string", "ts", "unix", `"1700000000.5"`, "2023-11-14T22:13:20.5Z"},
		{"unix negative", "ts", "unix", `-1.5`, "1969-12-31T23:59:58.5Z"},
		{"unix exponent", "ts", "unix", `1.7e9`, "2023-11-14T22:13:20Z"},
		{"unix ms exact", "ts", "unix_ms", `1700000000123`, "2023-11-14T22:13:20.123Z"},
		{"unix ms fraction", "ts", "unix_ms", `1700000000123.456`, "2023-11-14T22:13:20.123456Z"},
		{"unix us exact", "ts", "unix_us", `1700000000123456`, "2023-11-14T22:13:20.123456Z"},
		{"unix ns exact", "ts", "unix_ns", `1700000000123456789`, "2023-11-14T22:13:20.123456789Z"},
		{"unix ns string", "ts", "unix_ns", `"1700000000123456789"`, "2023-11-14T22:13:20.123456789Z"},
		{"unix sub-ns digits dropped", "ts", "unix_ns", `5.9`, "1970-01-01T00:00:00.000000005Z"},
		{"unix out of range", "ts", "unix", `1e300`, ""},
		{"unix ms out of range", "ts", "unix_ms", `99999999999999999999`, ""},
		{"unix not a number", "ts", "unix", `"soon"`, ""},
		{"unix bool", "ts", "unix", `true`, ""},
		{"go layout", "time", "02/Jan/2006:15:04:05 -0700", `"06/May/2024:07:08:09 +0200"`, "2024-05-06T05:08:09Z"},
		{"go layout mismatch", "time", "02/Jan/2006:15:04:05 -0700", `"2024-05-06"`, ""},
		{"nested field", "event.created", "rfc3339", `"2024-05-06T07:08:09Z"`, "2024-05-06T07:08:09Z"},
		{"disabled", "", "rfc3339", `"2024-05-06T07:08:09Z"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := `{"` + tt.field + `":` + tt.give + `}`
			if strings.Contains(tt.field, ".") {
				a, b, _ := strings.Cut(tt.field, ".")
				rec = `{"` + a + `":{"` + b + `":` + tt.give + `}}`
			}
			if tt.field == "" {
				rec = `{"@timestamp":` + tt.give + `}`
			}
			p := New(&Config{TimestampField: tt.field, TimestampFormat: tt.format})
			var got time.Time
			err := p.Parse([]byte(rec), emitFunc(func(e *event.Event) error { got = e.Time; return nil }))
			if err != nil {
				t.Fatal(err)
			}
			gotS := ""
			if !got.IsZero() {
				gotS = got.UTC().Format(time.RFC3339Nano)
			}
			if gotS != tt.want {
				t.Errorf("time of %s = %q, want %q", rec, gotS, tt.want)
			}
		})
	}
}

type emitFunc func(*event.Event) error

func (f emitFunc) Emit(e *event.Event) error { return f(e) }
func (emitFunc) Reject([]byte, error)        {}
func (emitFunc) Skip(string)                 {}

func TestDecimalNanos(t *testing.T) {
	tests := []struct {
		give   string
		scale  int64
		want   int64
		wantOK bool
	}{
		{"0", 1e9, 0, true},
		{"1", 1e9, 1e9, true},
		{"-1", 1e6, -1e6, true},
		{"1.000000001", 1e9, 1e9 + 1, true},
		{"1.0000000019", 1e9, 1e9 + 1, true},
		{"9223372036", 1e9, 9223372036e9, true},
		{"9223372037", 1e9, 0, false},
		{"9223372036854775807", 1, 9223372036854775807, true},
		{"9223372036854775808", 1, 0, false},
		{"99999999999999999999", 1, 0, false},
		{"9223372036.854775807", 1e9, 9223372036854775807, true},
		{"9223372036.854775808", 1e9, 0, false},
		{"1e9", 1, 0, false},
		{"", 1, 0, false},
		{".5", 1e9, 0, false},
		{"1.x", 1e9, 0, false},
		{"+1", 1e9, 0, false},
	}
	for _, tt := range tests {
		got, ok := decimalNanos(tt.give, tt.scale)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("decimalNanos(%q, %d) = %d, %v; want %d, %v", tt.give, tt.scale, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestConfig(t *testing.T) {
	f := Format()
	if f.Name != "json" || NDJSONFormat().Name != "ndjson" {
		t.Errorf("names %q %q", f.Name, NDJSONFormat().Name)
	}
	c := defaults()
	if c.TimestampField != "@timestamp" || c.TimestampFormat != "rfc3339" || c.Validate() != nil {
		t.Errorf("defaults %+v: %v", c, c.Validate())
	}
	c.TimestampFormat = ""
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "timestamp_format: ") {
		t.Errorf("Validate of an empty format = %v", err)
	}
	p, err := f.New(defaults())
	if err != nil || p == nil {
		t.Errorf("New: %v", err)
	}
}
