package cloudfrontparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

func TestGolden(t *testing.T) {
	parsetest.Golden(t, "testdata", parsetest.Lines, func() parse.Parser { return New(Config{}) })
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		give    Config
		wantErr bool
	}{
		{"default", Config{}, false},
		{"custom", Config{Fields: []string{"date", "time", "c-ip"}}, false},
		{"empty name", Config{Fields: []string{"date", ""}}, true},
		{"duplicate", Config{Fields: []string{"date", "date"}}, true},
	}
	for _, tt := range tests {
		if err := tt.give.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}

// A configured field list applies to lines that come without a header.
func TestConfigFields(t *testing.T) {
	p := New(Config{Fields: []string{"date", "time", "sc-status", "c-ip"}})
	res := parsetest.Run(p, []byte("2025-01-02\t03:04:05\t200\t192.0.2.1\n"), parsetest.Lines)
	if len(res.Events) != 1 {
		t.Fatalf("got %+v", res)
	}
	want := `"status_code":200`
	if !contains(res.Events[0], want) || !contains(res.Events[0], `"ip":"192.0.2.1"`) {
		t.Errorf("event %s lacks %s", res.Events[0], want)
	}
}

func contains(b []byte, s string) bool {
	return len(b) > 0 && string(b) != "" && stringIndex(string(b), s) >= 0
}

func stringIndex(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
