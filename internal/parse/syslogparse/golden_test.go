package syslogparse

import (
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// testNow is the fixed clock of the golden tests: RFC 3164 years are inferred from it.
var testNow = time.Date(2024, time.March, 1, 12, 0, 0, 0, time.UTC)

func newTestParser(t testing.TB) *Parser {
	cfg := NewConfig()
	cfg.Now = func() time.Time { return testNow }
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGolden(t *testing.T) {
	parsetest.Golden(t, "testdata", parsetest.Lines, func() parse.Parser { return newTestParser(t) })
}

func TestFormat(t *testing.T) {
	f := Format()
	cfg := f.NewConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.New(cfg); err != nil {
		t.Fatal(err)
	}
	if f.Name != "syslog" || f.Dataset != "syslog" {
		t.Fatalf("format %q dataset %q", f.Name, f.Dataset)
	}
	bad := &Config{Timezone: "Mars/Olympus_Mons"}
	if err := bad.Validate(); err == nil {
		t.Fatal("invalid timezone accepted")
	}
}

func TestInferYear(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		tz   string
		give string
		want time.Time
	}{
		{"same year", testNow, "UTC", "<13>Feb 28 12:00:00 h a: m", time.Date(2024, 2, 28, 12, 0, 0, 0, time.UTC)},
		{"december read in january", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), "UTC", "<13>Dec 31 23:59:59 h a: m", time.Date(2023, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"slightly in the future", testNow, "UTC", "<13>Mar  1 20:00:00 h a: m", time.Date(2024, 3, 1, 20, 0, 0, 0, time.UTC)},
		{"two days ahead is last year", testNow, "UTC", "<13>Mar  3 12:00:00 h a: m", time.Date(2023, 3, 3, 12, 0, 0, 0, time.UTC)},
		{"feb 29 in a common year", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), "UTC", "<13>Feb 29 10:00:00 h a: m", time.Date(2024, 2, 29, 10, 0, 0, 0, time.UTC)},
		{"configured zone", testNow, "Europe/Paris", "<13>Feb 28 12:00:00 h a: m", time.Date(2024, 2, 28, 11, 0, 0, 0, time.UTC)},
		{"explicit year", testNow, "UTC", "<13>Jan  5 2019 10:00:00 h a: m", time.Date(2019, 1, 5, 10, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{Timezone: tt.tz, Now: func() time.Time { return tt.now }}
			p, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var c conformancetest.Capture
			if err := p.Parse([]byte(tt.give), &c); err != nil {
				t.Fatal(err)
			}
			if len(c.Times) != 1 || !c.Times[0].Equal(tt.want) {
				t.Fatalf("got %v, want %v", c.Times, tt.want)
			}
		})
	}
}

// The golden files do not show e.Time, so full-precision RFC 5424 timestamps are
// checked here.
func TestTimestampPrecision(t *testing.T) {
	tests := []struct {
		give string
		want time.Time
	}{
		{"<34>1 2003-08-24T05:14:15.000003-07:00 h a - - -", time.Date(2003, 8, 24, 12, 14, 15, 3000, time.UTC)},
		{"<34>1 1995-04-12T23:20:50.52Z h a - - -", time.Date(1995, 4, 12, 23, 20, 50, 520000000, time.UTC)},
		{"<34>1 2016-12-31T23:59:60-04:00 h a - - -", time.Date(2017, 1, 1, 4, 0, 0, 0, time.UTC)},
		{"<13>2024-01-05T12:00:00.123456789+01:00 web01 nginx[812]: m", time.Date(2024, 1, 5, 11, 0, 0, 123456789, time.UTC)},
		{"<189>123: *Feb 28 18:48:50.483 UTC: %SYS-5-CONFIG_I: x", time.Date(2024, 2, 28, 18, 48, 50, 483000000, time.UTC)},
	}
	for _, tt := range tests {
		var c conformancetest.Capture
		if err := newTestParser(t).Parse([]byte(tt.give), &c); err != nil {
			t.Fatalf("%q: %v", tt.give, err)
		}
		if !c.Times[0].Equal(tt.want) {
			t.Errorf("%q: got %v, want %v", tt.give, c.Times[0], tt.want)
		}
	}
}
