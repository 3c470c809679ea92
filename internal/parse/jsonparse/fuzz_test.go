package jsonparse

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// seedJSON adds every golden input line, the JSON files of the shared conformance
// suite (when present) and a few edge cases.
func seedJSON(f *testing.F) {
	add := func(b []byte) { f.Add(b) }
	golden, _ := filepath.Glob(filepath.Join("testdata", "*", "input.log"))
	for _, p := range golden {
		data, _ := os.ReadFile(p)
		for _, l := range bytes.Split(data, []byte("\n")) {
			add(l)
		}
	}
	shared, _ := filepath.Glob(filepath.Join("..", "..", "..", "..", "shared", "conformance", "*", "*.json"))
	if dir := os.Getenv("VIGIL_CONFORMANCE"); dir != "" {
		more, _ := filepath.Glob(filepath.Join(dir, "*", "*.json"))
		shared = append(shared, more...)
	}
	for _, p := range shared {
		if data, err := os.ReadFile(p); err == nil && len(data) < 1<<16 {
			add(data)
		}
	}
	for _, s := range []string{``, ` `, `{}`, `[]`, `[1,[2,{}]]`, `"\ud800"`, "\"\xff\"", "[\"\xed\xa0\x80\"]",
		`1e+5`, `-0.0`, strings.Repeat("[", 129) + strings.Repeat("]", 129), `{"a":1}` + "\n"} {
		add([]byte(s))
	}
}

// FuzzValidate checks Validate against encoding/json.Valid. They must agree on every
// input except where ours is deliberately stricter: invalid UTF-8 inside a string
// (encoding/json accepts it and replaces it when decoding; we reject it so that stored
// records are valid UTF-8) and nesting deeper than 128 levels. ValidateObject and
// EachArrayElement must agree with Validate, with the same error offset.
func FuzzValidate(f *testing.F) {
	seedJSON(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Validate(data)
		std := json.Valid(data)
		if err == nil {
			if !std {
				t.Fatalf("Validate accepts %q, encoding/json does not", data)
			}
			if !utf8.Valid(data) {
				t.Fatalf("Validate accepts invalid UTF-8 %q", data)
			}
		} else {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("Validate(%q) = %v: want a *SyntaxError with an offset within the input", data, err)
			}
			if std {
				switch se.Msg {
				case "nesting deeper than 128 levels":
				case "invalid UTF-8 in string":
					// Only the encoding differs: with the bad bytes replaced, ours accepts
					// it too (or finds it too deep).
					fixed := bytes.ToValidUTF8(data, []byte("\uFFFD"))
					if err := Validate(fixed); err != nil && !strings.Contains(err.Error(), "nesting deeper") {
						t.Fatalf("Validate(%q) = %v after fixing the UTF-8 of %q", fixed, err, data)
					}
				default:
					t.Fatalf("Validate rejects %q (%v), encoding/json accepts it", data, err)
				}
			}
		}

		trimmed := bytes.TrimLeft(data, " \t\r\n")
		if len(trimmed) > 0 && trimmed[0] == '{' {
			if oerr := ValidateObject(data); errString(oerr) != errString(err) {
				t.Fatalf("ValidateObject(%q) = %v, Validate = %v", data, oerr, err)
			}
		} else if ValidateObject(data) == nil {
			t.Fatalf("ValidateObject accepts a non-object %q", data)
		}
		if len(trimmed) > 0 && trimmed[0] == '[' {
			n := 0
			aerr := EachArrayElement(data, func(_ int, elem []byte) error {
				n++
				// An element is no deeper on its own than it was in the array.
				if Validate(elem) != nil {
					t.Fatalf("element %q of %q is not valid on its own", elem, data)
				}
				return nil
			})
			if errOffset(aerr) != errOffset(err) {
				t.Fatalf("EachArrayElement(%q) = %v, Validate = %v", data, aerr, err)
			}
		}
	})
}

// errOffset is -1 for nil, else the offset of a *SyntaxError (messages may differ:
// "after the JSON array" against "after the JSON value").
func errOffset(err error) int {
	var se *SyntaxError
	if err == nil || !errors.As(err, &se) {
		return -1
	}
	return se.Offset
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzParse checks that no record makes the parser panic, that it parses exactly the
// records ValidateObject accepts (blank ones are skipped), and that every event is valid
// JSON, also when the parser is reused.
func FuzzParse(f *testing.F) {
	seedJSON(f)
	p := New(&Config{TimestampField: "ts", TimestampFormat: "unix_ms"})
	f.Fuzz(func(t *testing.T, rec []byte) {
		orig := bytes.Clone(rec)
		var c parsetest.Collector
		err := p.Parse(rec, &c)
		if !bytes.Equal(rec, orig) {
			t.Fatalf("Parse modified its input")
		}
		blank := len(bytes.TrimLeft(rec, " \t\r\n")) == 0
		verr := ValidateObject(rec)
		switch {
		case blank:
			if err != nil || len(c.Docs) != 0 {
				t.Fatalf("blank record: %v, %d events", err, len(c.Docs))
			}
		case verr == nil && err != nil:
			t.Fatalf("Parse(%q) = %v, but ValidateObject accepts it", rec, err)
		case verr != nil && err == nil:
			t.Fatalf("Parse accepts %q, ValidateObject says %v", rec, verr)
		case err != nil:
			if !strings.HasPrefix(err.Error(), "decode: invalid JSON at byte ") {
				t.Fatalf("Parse(%q) error %q", rec, err)
			}
		}
		for _, d := range c.Docs {
			if !json.Valid(d) || !utf8.Valid(d) {
				t.Fatalf("Parse(%q) emitted invalid JSON %s", rec, d)
			}
		}
	})
}
