package jsonparse

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deepObj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	tests := []struct {
		name    string
		give    string
		wantOff int // -1: valid
		wantMsg string
	}{
		{"object", `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, -1, ""},
		{"empty object", `{}`, -1, ""},
		{"empty array", `[]`, -1, ""},
		{"spaces everywhere", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", -1, ""},
		{"scalar", `"x"`, -1, ""},
		{"numbers", `[0,-0,1.5,-1e10,2E+3,3e-2,12345678901234567890123]`, -1, ""},
		{"escapes", `"\" \\ \/ \b \f \n \r \t \u00e9 \uD834\uDD1E \ud800"`, -1, ""},
		{"utf8", `"héllo ✓ 𝄞"`, -1, ""},
		{"depth 128", deep(128), -1, ""},
		{"object depth 128", deepObj(128), -1, ""},

		{"empty", ``, 0, "unexpected end of input"},
		{"only space", `   `, 3, "unexpected end of input"},
		{"trailing data", `{} x`, 3, "unexpected data after the JSON value"},
		{"two values", `1 2`, 2, "unexpected data after the JSON value"},
		{"trailing comma object", `{"a":1,}`, 7, "expected a string key"},
		{"trailing comma array", `[1,]`, 3, `unexpected character ']'`},
		{"unquoted key", `{a:1}`, 1, "expected a string key"},
		{"missing colon", `{"a" 1}`, 5, "expected ':' after object key"},
		{"missing comma", `{"a":1 "b":2}`, 7, "expected ',' or '}' in object"},
		{"array missing comma", `[1 2]`, 3, "expected ',' or ']' in array"},
		{"unterminated object", `{"a":1`, 6, "unexpected end of input in object"},
		{"unterminated array", `[1`, 2, "unexpected end of input in array"},
		{"unterminated string", `"abc`, 4, "unterminated string"},
		{"control char", "\"a\x01\"", 2, "control character in string"},
		{"raw newline in string", "\"a\nb\"", 2, "control character in string"},
		{"bad escape", `"\x"`, 2, "bad escape in string"},
		{"short u escape", `"\u12"`, 2, `short \u escape`},
		{"bad u escape", `"\u12G4"`, 2, `bad \u escape`},
		{"escape at end", `"\`, 2, "unexpected end of input in string escape"},
		{"invalid utf8", "\"a\xffb\"", 2, "invalid UTF-8 in string"},
		{"utf8 surrogate", "\"\xed\xa0\x80\"", 1, "invalid UTF-8 in string"},
		{"leading zero", `01`, 1, "unexpected data after the JSON value"},
		{"plus sign", `+1`, 0, `unexpected character '+'`},
		{"minus only", `-`, 1, "bad number"},
		{"minus letter", `-a`, 1, "bad number"},
		{"dot without digits", `1.`, 2, "bad number: digit expected after '.'"},
		{"leading dot", `.5`, 0, `unexpected character '.'`},
		{"exponent without digits", `1e+`, 3, "bad number: digit expected in exponent"},
		{"bad literal", `tru`, 0, "bad literal, expected true"},
		{"bad literal null", `nul1`, 0, "bad literal, expected null"},
		{"capital literal", `True`, 0, `unexpected character 'T'`},
		{"nan", `NaN`, 0, `unexpected character 'N'`},
		{"BOM", "\xef\xbb\xbf{}", 0, "unexpected byte 0xef"},
		{"depth 129", deep(129), 128, "nesting deeper than 128 levels"},
		{"object depth 129", deepObj(129), 640, "nesting deeper than 128 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate([]byte(tt.give))
			if tt.wantOff < 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !json.Valid([]byte(tt.give)) {
					t.Fatalf("encoding/json disagrees: invalid")
				}
				return
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SyntaxError", err)
			}
			if se.Offset != tt.wantOff || se.Msg != tt.wantMsg {
				t.Errorf("got offset %d %q, want %d %q", se.Offset, se.Msg, tt.wantOff, tt.wantMsg)
			}
			if want := "invalid JSON at byte "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

func TestValidateObject(t *testing.T) {
	tests := []struct {
		give    string
		wantErr string
	}{
		{`{}`, ""},
		{` {"a":[1]} `, ""},
		{`[]`, "invalid JSON at byte 0: expected a JSON object"},
		{`  1`, "invalid JSON at byte 2: expected a JSON object"},
		{``, "invalid JSON at byte 0: expected a JSON object"},
		{`"{}"`, "invalid JSON at byte 0: expected a JSON object"},
		{`{} {}`, "invalid JSON at byte 3: unexpected data after the JSON value"},
		{`{"a":}`, "invalid JSON at byte 5: unexpected character '}'"},
	}
	for _, tt := range tests {
		err := ValidateObject([]byte(tt.give))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.wantErr {
			t.Errorf("ValidateObject(%q) = %q, want %q", tt.give, got, tt.wantErr)
		}
	}
}

func TestEachArrayElement(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    []string
		wantErr string
	}{
		{"empty", `[]`, nil, ""},
		{"empty with spaces", " [ ] \n", nil, ""},
		{"objects", `[{"a":1}, {"b":[2]} ,{}]`, []string{`{"a":1}`, `{"b":[2]}`, `{}`}, ""},
		{"mixed", `[1,"s",null,[true]]`, []string{`1`, `"s"`, `null`, `[true]`}, ""},
		{"not an array", `{"a":1}`, nil, "invalid JSON at byte 0: expected a JSON array"},
		{"empty input", ``, nil, "invalid JSON at byte 0: expected a JSON array"},
		// Elements before the error have been handed over already.
		{"bad second element", `[{"a":1},{"b":}]`, []string{`{"a":1}`}, "invalid JSON at byte 14: unexpected character '}'"},
		{"missing comma", `[1 2]`, []string{`1`}, "invalid JSON at byte 3: expected ',' or ']' in array"},
		{"unterminated", `[1,2`, []string{`1`, `2`}, "invalid JSON at byte 4: unexpected end of input in array"},
		{"trailing comma", `[1,]`, []string{`1`}, "invalid JSON at byte 3: unexpected character ']'"},
		{"trailing data", `[1] [2]`, []string{`1`}, "invalid JSON at byte 4: unexpected data after the JSON array"},
		{"too deep", `[` + strings.Repeat("[", 128) + strings.Repeat("]", 128) + `]`, nil, "invalid JSON at byte 128: nesting deeper than 128 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := EachArrayElement([]byte(tt.give), func(i int, elem []byte) error {
				if i != len(got) {
					t.Errorf("index %d, want %d", i, len(got))
				}
				got = append(got, string(elem))
				return nil
			})
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("err = %q, want %q", gotErr, tt.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("elements %q, want %q", got, tt.want)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	err := EachArrayElement([]byte(`[1,2,3]`), func(int, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("callback error: %v after %d calls", err, n)
	}
}
