package event

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{"empty", "", `""`},
		{"plain", "hello world", `"hello world"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"named controls", "a\nb\rc\td", `"a\nb\rc\td"`},
		{"other controls", "\x00\x01\x08\x0c\x1f", `"\u0000\u0001\u0008\u000c\u001f"`},
		{"DEL is fine", "\x7f", "\"\x7f\""},
		{"slash not escaped", "a/b", `"a/b"`},
		{"html not escaped", "<a&b>", `"<a&b>"`},
		{"multibyte", "héllo ✓ 𝄞", `"héllo ✓ 𝄞"`},
		{"U+FFFD itself", "\uFFFD", "\"\uFFFD\""},
		{"line separator", "a\u2028b", `"a\u2028b"`},
		{"paragraph separator", "a\u2029b", `"a\u2029b"`},
		{"other U+202x kept", "a\u202Ab", "\"a\u202Ab\""},
		{"invalid byte", "a\xffb", `"a\ufffdb"`},
		{"truncated rune", "a\xe2\x82", `"a\ufffd\ufffd"`},
		{"lone continuation", "\x80", `"\ufffd"`},
		{"utf8 surrogate", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"overlong", "\xc0\xaf", `"\ufffd\ufffd"`},
		{"invalid at end after escape", "\"\xff", `"\"\ufffd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendString([]byte("x"), tt.give))
			if got != "x"+tt.want {
				t.Errorf("AppendString(%q) = %s, want %s", tt.give, got[1:], tt.want)
			}
			if got2 := string(AppendStringBytes([]byte("x"), []byte(tt.give))); got2 != got {
				t.Errorf("AppendStringBytes(%q) = %s, AppendString gave %s", tt.give, got2[1:], got[1:])
			}
			checkJSONString(t, tt.give, []byte(got[1:]))
		})
	}
}

// checkJSONString checks that out is a valid JSON string that decodes to in with
// invalid UTF-8 replaced, and that it carries no raw U+2028/U+2029.
func checkJSONString(t *testing.T, in string, out []byte) {
	t.Helper()
	var dec string
	if err := json.Unmarshal(out, &dec); err != nil {
		t.Fatalf("%q encodes to invalid JSON %s: %v", in, out, err)
	}
	if want := validUTF8(in); dec != want {
		t.Fatalf("%q round trips to %q, want %q", in, dec, want)
	}
	if !utf8.Valid(out) {
		t.Fatalf("%q encodes to invalid UTF-8", in)
	}
	if strings.ContainsAny(string(out), "\u2028\u2029") {
		t.Fatalf("%q encodes with a raw line or paragraph separator", in)
	}
}

func TestAppendFloat(t *testing.T) {
	tests := []struct {
		give float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "-0"},
		{1, "1"},
		{-1.5, "-1.5"},
		{0.1, "0.1"},
		{1e20, "100000000000000000000"},
		{1e21, "1e+21"},
		{1e-6, "0.000001"},
		{1e-7, "1e-7"},
		{1.5e-10, "1.5e-10"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{math.SmallestNonzeroFloat64, "5e-324"},
		{math.NaN(), "null"},
		{math.Inf(1), "null"},
		{math.Inf(-1), "null"},
	}
	for _, tt := range tests {
		got := string(Float(tt.give).AppendJSON(nil))
		if got != tt.want {
			t.Errorf("Float(%v) = %s, want %s", tt.give, got, tt.want)
		}
		if math.IsNaN(tt.give) || math.IsInf(tt.give, 0) {
			continue
		}
		std, _ := json.Marshal(tt.give)
		if got != string(std) {
			t.Errorf("Float(%v) = %s, encoding/json gives %s", tt.give, got, std)
		}
	}
}

// validUTF8 replaces every byte of invalid UTF-8 with U+FFFD, as AppendString does
// (strings.ToValidUTF8 would replace a whole run with one).
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += size
	}
	return b.String()
}
