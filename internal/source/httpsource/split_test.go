package httpsource

import (
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name       string
		ct, body   string
		want       []string
		wantFormat string
		wantBad    []string // reasons
		wantErr    string
	}{
		{name: "text lines", ct: "text/plain; charset=utf-8", body: "a\r\n\n  \nb c\n", want: []string{"a", "b c"}, wantFormat: "lines"},
		{name: "text keeps JSON as text", ct: "text/plain", body: `{"a":1}`, want: []string{`{"a":1}`}, wantFormat: "lines"},
		{name: "ndjson", ct: "application/x-ndjson", body: "{\"a\":1}\r\n\n {\"b\":2} \n", want: []string{`{"a":1}`, `{"b":2}`}},
		{name: "ndjson types", ct: "Application/JSONL ; x=y", body: `{"a":1}`, want: []string{`{"a":1}`}},
		{name: "ndjson bad line", ct: "application/ndjson", body: "{\"a\":1}\n[1]\n{\"b\":\n", want: []string{`{"a":1}`},
			wantBad: []string{"line 2: invalid JSON at byte 0: expected a JSON object", "line 3: invalid JSON at byte 5: unexpected end of input"}},
		{name: "json object", ct: "application/json", body: " {\"a\":\n1} \n", want: []string{"{\"a\":\n1}"}},
		{name: "json array", ct: "application/json", body: `[{"a":1}, {"b":[2]}]`, want: []string{`{"a":1}`, `{"b":[2]}`}},
		{name: "json empty array", ct: "application/json", body: `[]`},
		{name: "json array with non-objects", ct: "application/json", body: `[{"a":1},2,"s",[{}]]`, want: []string{`{"a":1}`},
			wantBad: []string{"array element 1: not a JSON object", "array element 2: not a JSON object", "array element 3: not a JSON object"}},
		{name: "json malformed array", ct: "application/json", body: `[{"a":1},{"b":}]`, wantErr: "malformed JSON array: invalid JSON at byte 14: unexpected character '}'"},
		{name: "json lenient ndjson", ct: "application/json", body: "{\"a\":1}\n{\"b\":2}", want: []string{`{"a":1}`, `{"b":2}`}},
		{name: "json not json", ct: "application/json", body: "hello", wantBad: []string{"line 1: invalid JSON at byte 0: expected a JSON object"}},
		{name: "form-encoded JSON (curl -d)", ct: "application/x-www-form-urlencoded", body: `{"a":1}`, want: []string{`{"a":1}`}},
		{name: "no content type, array", ct: "", body: "\n[{\"a\":1}]", want: []string{`{"a":1}`}},
		{name: "no content type, text", ct: "", body: "plain\nlines", want: []string{"plain", "lines"}, wantFormat: "lines"},
		{name: "empty", ct: "application/json", body: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Source
			recs, format, bad, err := s.split(tt.ct, []byte(tt.body))
			if gotErr := errText(err); gotErr != tt.wantErr {
				t.Fatalf("err = %q, want %q", gotErr, tt.wantErr)
			}
			var got []string
			for _, r := range recs {
				got = append(got, string(r))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("records %q, want %q", got, tt.want)
			}
			if format != tt.wantFormat {
				t.Errorf("format %q, want %q", format, tt.wantFormat)
			}
			var reasons []string
			for _, b := range bad {
				reasons = append(reasons, b.reason)
				if len(b.data) == 0 {
					t.Errorf("bad record without its bytes: %q", b.reason)
				}
			}
			if len(reasons) != len(tt.wantBad) {
				t.Fatalf("bad %q, want %q", reasons, tt.wantBad)
			}
			for i := range reasons {
				if !strings.HasPrefix(reasons[i], tt.wantBad[i]) {
					t.Errorf("bad[%d] = %q, want prefix %q", i, reasons[i], tt.wantBad[i])
				}
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLines(t *testing.T) {
	tests := []struct {
		give string
		want []string
	}{
		{"", nil},
		{"\n\r\n \t\n", nil},
		{"a", []string{"a"}},
		{"a\r\n", []string{"a"}},
		{"  indented \r\nnext", []string{"  indented ", "next"}},
		{"a\r\r\nb", []string{"a", "b"}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range lines([]byte(tt.give)) {
			got = append(got, string(r))
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("lines(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
