package alert

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestField(t *testing.T) {
	d, err := Decode([]byte(`{"event":{"id":"a1","severity":73},"source.ip":"10.0.0.1",
		"user":{"name":"bob","roles":["admin","dev"]},"rule":{"author":["Vigil","SOC"]},"ok":true,"nul":null,
		"url":{"full.path":"/x"},"obj":{"a":{"b":1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		give   string
		want   string
		wantOK bool
	}{
		{"event.id", "a1", true},
		{"event.severity", "73", true},
		{"source.ip", "10.0.0.1", true},
		{"user.name", "bob", true},
		{"user.roles", "admin, dev", true},
		{"rule.author", "Vigil, SOC", true},
		{"ok", "true", true},
		{"nul", "", false},
		{"url.full.path", "/x", true},
		{"obj.a", `{"b":1}`, true},
		{"user.email", "", false},
		{"event.id.x", "", false},
	}
	for _, tt := range tests {
		got, ok := d.Field(tt.give)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Field(%q) = %q, %v; want %q, %v", tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
	for _, bad := range []string{``, `null`, `[1]`, `{"a":`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q): no error", bad)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		give    string
		want    rate.Limit
		wantErr bool
	}{
		{"1/s", 1, false},
		{"30/m", 0.5, false},
		{"3600/h", 1, false},
		{"0.5/s", 0.5, false},
		{"unlimited", rate.Inf, false},
		{"1", 0, true},
		{"0/s", 0, true},
		{"-1/s", 0, true},
		{"1/d", 0, true},
		{"fast", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.give)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, error %v", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func alertDoc(id, rule, ip string) Doc {
	d, err := Decode(fmt.Appendf(nil, `{"event":{"id":%q},"rule":{"id":%q},"source":{"ip":%q}}`, id, rule, ip))
	if err != nil {
		panic(err)
	}
	return d
}

func TestSuppressor(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := NewSuppressor(Suppress{Window: 10 * time.Minute, Key: []string{"rule.id", "source.ip"}, MaxKeys: 2},
		func() time.Time { return now })
	step := func(id, rule, ip string, want bool) {
		t.Helper()
		if got := s.Suppressed(alertDoc(id, rule, ip)); got != want {
			t.Errorf("%s %s %s at %v: suppressed %v, want %v", id, rule, ip, now.Unix(), got, want)
		}
	}
	step("a1", "r1", "10.0.0.1", false)
	step("a2", "r1", "10.0.0.1", true)  // same key within the window
	step("a1", "r1", "10.0.0.1", false) // the same alert again (a redelivery): never lost
	step("a3", "r1", "10.0.0.2", false) // another source
	step("a4", "r2", "10.0.0.1", false) // another rule; evicts r1/10.0.0.1 (max_keys 2)
	if s.Len() != 2 {
		t.Errorf("%d keys remembered, want at most 2", s.Len())
	}
	step("a5", "r1", "10.0.0.1", false) // forgotten by the LRU: sent again
	now = now.Add(9 * time.Minute)
	step("a6", "r1", "10.0.0.1", true)
	now = now.Add(time.Minute)
	step("a7", "r1", "10.0.0.1", false) // the window is over; a new one opens
	now = now.Add(time.Minute)
	step("a8", "r1", "10.0.0.1", true)

	if NewSuppressor(Suppress{MaxKeys: 10}, nil) != nil {
		t.Error("a suppressor without a window")
	}
}

func TestSuppressorFilter(t *testing.T) {
	s := NewSuppressor(Suppress{Window: time.Minute, Key: []string{"rule.id"}, MaxKeys: 10}, nil)
	in := []byte(`{"event":{"id":"1"},"rule":{"id":"r"}}` + "\n" +
		`{"event":{"id":"2"},"rule":{"id":"r"}}` + "\n" +
		`not json` + "\n" +
		`{"event":{"id":"3"},"rule":{"id":"q"}}` + "\n")
	kept, n, dropped := s.Filter(in)
	want := `{"event":{"id":"1"},"rule":{"id":"r"}}` + "\n" + `not json` + "\n" + `{"event":{"id":"3"},"rule":{"id":"q"}}` + "\n"
	if string(kept) != want || n != 3 || dropped != 1 {
		t.Errorf("Filter = %q, %d, %d", kept, n, dropped)
	}
}

func TestSuppressValidate(t *testing.T) {
	if err := (Suppress{MaxKeys: 1}).Validate("suppress"); err != nil {
		t.Errorf("off: %v", err)
	}
	if err := (Suppress{Window: time.Minute, MaxKeys: 1}).Validate("suppress"); err == nil {
		t.Error("a window without a key")
	}
	if err := (Suppress{Window: -time.Minute, Key: []string{"a"}, MaxKeys: 1}).Validate("suppress"); err == nil {
		t.Error("a negative window")
	}
}
