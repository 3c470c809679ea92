package cloudtrailparse

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

func newParser() parse.Parser { return New(NewConfig()) }

func TestGolden(t *testing.T) {
	parsetest.Golden(t, "testdata", parsetest.WholeFile, newParser)
}

// timeCollector records the event time and ID, which golden documents do not show
// (the pipeline writes @timestamp and event.id from them).
type timeCollector struct {
	parsetest.Collector
	times []string
	ids   []string
}

func (c *timeCollector) Emit(e *event.Event) error {
	c.times = append(c.times, string(event.AppendTimestamp(nil, e.Time)))
	c.ids = append(c.ids, e.ID)
	if e.Dataset != Dataset {
		return errors.New("dataset not set")
	}
	return c.Collector.Emit(e)
}

func TestTimeAndID(t *testing.T) {
	in := `{"Records":[` +
		`{"eventTime":"2024-06-01T00:00:01.123456789Z","eventID":"a"},` +
		`{"eventTime":"2024-01-02T03:04:05+02:00","eventID":"b\u0041"},` +
		`{"eventTime":"2024-12-31T23:59:59Z"}]}`
	var c timeCollector
	if err := newParser().Parse([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	wantTimes := []string{"2024-06-01T00:00:01.123456789Z", "2024-01-02T01:04:05Z", "2024-12-31T23:59:59Z"}
	wantIDs := []string{"a", "bA", ""}
	if strings.Join(c.times, " ") != strings.Join(wantTimes, " ") {
		t.Errorf("times = %v, want %v", c.times, wantTimes)
	}
	if strings.Join(c.ids, " ") != strings.Join(wantIDs, " ") {
		t.Errorf("ids = %v, want %v", c.ids, wantIDs)
	}
}

func TestDecompressionLimit(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"Records":[`))
	zw.Write(bytes.Repeat([]byte(" "), 1<<20))
	zw.Write([]byte(`]}`))
	zw.Close()

	cfg := NewConfig()
	cfg.MaxDecompressedBytes = 64 << 10
	var c parsetest.Collector
	err := New(cfg).Parse(buf.Bytes(), &c)
	if err == nil || !strings.Contains(err.Error(), "max_decompressed_bytes") {
		t.Fatalf("err = %v, want a max_decompressed_bytes error", err)
	}
	// The same file within the limit parses (to no events), and the parser is reusable.
	cfg.MaxDecompressedBytes = 2 << 20
	p := New(cfg)
	for range 2 {
		if err := p.Parse(buf.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
	}
	// A corrupt stream is an error, not a panic.
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)/2] ^= 0xff
	if err := p.Parse(bad, &c); err == nil {
		t.Fatal("corrupt gzip accepted")
	}
}

type failingEmitter struct{ parsetest.Collector }

var errSink = errors.New("sink full")

func (failingEmitter) Emit(*event.Event) error { return errSink }

func TestEmitErrorReturnedUnchanged(t *testing.T) {
	for _, in := range []string{
		`{"Records":[{"eventTime":"2024-01-01T00:00:00Z"}]}`,
		`[{"eventTime":"2024-01-01T00:00:00Z"}]`,
		`{"eventTime":"2024-01-01T00:00:00Z"}`,
	} {
		if err := newParser().Parse([]byte(in), &failingEmitter{}); err != errSink {
			t.Errorf("%s: err = %v, want the emitter's error unchanged", in, err)
		}
	}
}

func TestConfig(t *testing.T) {
	f := Format()
	cfg := f.NewConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.(*Config).MaxDecompressedBytes = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_decompressed_bytes") {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.New(parse.NoConfig{}); err == nil {
		t.Fatal("wrong config type accepted")
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		give string
		want string // "" = rejected
	}{
		{"2014-07-16T15:49:27Z", "2014-07-16T15:49:27Z"},
		{"2014-07-16T15:49:27.5Z", "2014-07-16T15:49:27.5Z"},
		{"2014-07-16T15:49:27.1234567891Z", "2014-07-16T15:49:27.123456789Z"},
		{"2014-07-16T15:49:27-01:30", "2014-07-16T17:19:27Z"},
		{"2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"2023-02-29T00:00:00Z", ""},
		{"2014-07-16T15:49:27", ""},
		{"2014-07-16T15:49:27.Z", ""},
		{"20131102T010628Z", ""},
		{"2014-07-16T24:00:00Z", ""},
		{"2014-07-16T15:49:27+0100", ""},
	}
	for _, tt := range tests {
		got, ok := parseTime([]byte(tt.give))
		s := ""
		if ok {
			s = string(event.AppendTimestamp(nil, got))
		}
		if s != tt.want {
			t.Errorf("parseTime(%q) = %q, want %q", tt.give, s, tt.want)
		}
	}
}

func TestIsIP(t *testing.T) {
	for give, want := range map[string]bool{
		"89.160.20.156": true, "0.0.0.0": true, "255.255.255.255": true, "2001:db8::1": true,
		"035.249.253.232": false, "256.1.1.1": false, "1.2.3": false, "1.2.3.4.5": false,
		"AWS Internal": false, "ec2.amazonaws.com": false, "fe80::1%eth0": false, "": false,
		"::ffff:1.2.3.4": true, "1..2.3": false,
	} {
		if got := isIP([]byte(give)); got != want {
			t.Errorf("isIP(%q) = %v, want %v", give, got, want)
		}
	}
}
