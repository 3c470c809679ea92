package vpcflowparse

import (
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

func TestGolden(t *testing.T) {
	parsetest.Golden(t, "testdata", parsetest.Lines, func() parse.Parser { return New(Config{}) })
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		give    Config
		wantErr bool
	}{
		{"default", Config{}, false},
		{"custom", Config{Fields: []string{"version", "pkt-srcaddr", "pkt_dstaddr"}}, false},
		{"typo", Config{Fields: []string{"version", "srcadr"}}, true},
		{"duplicate", Config{Fields: []string{"srcaddr", "srcaddr"}}, true},
	}
	for _, tt := range tests {
		if err := tt.give.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
	// A configured custom format applies to lines without a header.
	p := New(Config{Fields: []string{"instance_id", "interface_id", "srcaddr", "dstaddr", "pkt_srcaddr", "pkt_dstaddr"}})
	res := parsetest.Run(p, []byte("- eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5\n"), parsetest.Lines)
	if len(res.Events) != 1 || !strings.Contains(string(res.Events[0]), `"pkt_dstaddr":"203.0.113.5"`) {
		t.Errorf("custom format: %+v", res)
	}
}
