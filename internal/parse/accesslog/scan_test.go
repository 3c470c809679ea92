package accesslog

import (
	"testing"
	"time"
)

// The golden files do not show e.Time (the pipeline writes @timestamp from it), so
// the time conversions are checked here.
func TestParseTime(t *testing.T) {
	tests := []struct {
		give string
		want time.Time
		ok   bool
	}{
		{"10/Oct/2000:13:55:36 -0700", time.Date(2000, 10, 10, 20, 55, 36, 0, time.UTC), true},
		{"26/Dec/2016:16:16:29 +0200", time.Date(2016, 12, 26, 14, 16, 29, 0, time.UTC), true},
		{"05/Jan/2024:09:15:02.123456 +0100", time.Date(2024, 1, 5, 8, 15, 2, 123456000, time.UTC), true},
		{"2000-10-10T20:55:36Z", time.Date(2000, 10, 10, 20, 55, 36, 0, time.UTC), true},
		{"29/Feb/2023:00:00:00 +0000", time.Time{}, false},
		{"10/Foo/2000:13:55:36 -0700", time.Time{}, false},
		{"10/Oct/2000:13:55:36", time.Time{}, false},
		{"1234", time.Time{}, false},
		{"-", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseTime([]byte(tt.give))
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v, %v", tt.give, got, ok, tt.want, tt.ok)
		}
	}
}

func TestScan(t *testing.T) {
	var l Line
	line := []byte(`www.example.com:443 203.0.113.7 bob alice [05/Jan/2024:09:15:02 +0100] "GET /a b HTTP/1.1" 200 5120 "-" "UA \"x\"" "1.2.3.4"`)
	if err := Scan(line, &l); err != nil {
		t.Fatal(err)
	}
	if string(l.Head) != "www.example.com:443 203.0.113.7" || string(l.Ident) != "bob" || string(l.User) != "alice" {
		t.Errorf("head %q ident %q user %q", l.Head, l.Ident, l.User)
	}
	if string(l.Method) != "GET" || string(l.URL) != "/a b" || string(l.Version) != "1.1" {
		t.Errorf("request %q %q %q", l.Method, l.URL, l.Version)
	}
	if l.Status != 200 || l.BodyBytes != 5120 || l.Referrer != nil || string(l.UserAgent) != `UA \"x\"` || string(l.Rest) != `"1.2.3.4"` {
		t.Errorf("status %d bytes %d ref %q ua %q rest %q", l.Status, l.BodyBytes, l.Referrer, l.UserAgent, l.Rest)
	}
}

func TestIsIP(t *testing.T) {
	for s, want := range map[string]bool{
		"1.2.3.4": true, "::1": true, "2a02:cf40:10ff:f00f:0000:0000:0:8000": true, "::ffff:1.2.3.4": true,
		"256.1.1.1": false, "1.2.3": false, "localhost": false, "unix:": false, "1::2::3": false, ":": false,
	} {
		if IsIP([]byte(s)) != want {
			t.Errorf("IsIP(%q) != %v", s, want)
		}
	}
}
