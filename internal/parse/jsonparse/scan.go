package jsonparse

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 128

// SyntaxError is a JSON syntax error at a byte offset.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// scanner validates JSON and reports the extent of values. It never allocates except
// for errors.
type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) fail(msg string) error { return &SyntaxError{Offset: s.pos, Msg: msg} }

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value skips one value, returning its start and end offsets.
func (s *scanner) value(depth int) (int, int, error) {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0, 0, s.fail("unexpected end of input")
	}
	start := s.pos
	var err error
	switch c := s.data[s.pos]; {
	case c == '{':
		err = s.object(depth+1, nil)
	case c == '[':
		err = s.array(depth + 1)
	case c == '"':
		_, err = s.str()
	case c == '-' || (c >= '0' && c <= '9'):
		err = s.number()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	case c >= utf8.RuneSelf:
		// %q would show the byte as the Latin-1 character of the same number.
		err = s.fail(fmt.Sprintf("unexpected byte 0x%02x", c))
	default:
		err = s.fail(fmt.Sprintf("unexpected character %q", c))
	}
	return start, s.pos, err
}

// object scans an object; for each member it calls member (when not nil) with the raw
// key (without quotes, possibly with escapes), whether the key has escapes, and the
// scanner positioned at the value, which member must consume.
func (s *scanner) object(depth int, member func(key []byte, escaped bool) error) error {
	if depth > maxDepth {
		return s.fail("nesting deeper than 128 levels")
	}
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.fail("expected a string key")
		}
		kstart := s.pos + 1
		escaped, err := s.str()
		if err != nil {
			return err
		}
		key := s.data[kstart : s.pos-1]
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail("expected ':' after object key")
		}
		s.pos++
		if member != nil {
			if err := member(key, escaped); err != nil {
				return err
			}
		} else if _, _, err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail("unexpected end of input in object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.fail("expected ',' or '}' in object")
		}
	}
}

func (s *scanner) array(depth int) error {
	if depth > maxDepth {
		return s.fail("nesting deeper than 128 levels")
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if _, _, err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail("unexpected end of input in array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.fail("expected ',' or ']' in array")
		}
	}
}

// str scans a string starting at the opening quote and reports whether it has escapes.
func (s *scanner) str() (escaped bool, err error) {
	s.pos++ // opening quote
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return escaped, nil
		case c == '\\':
			escaped = true
			s.pos++
			if s.pos >= len(s.data) {
				return escaped, s.fail("unexpected end of input in string escape")
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				if s.pos+5 > len(s.data) {
					return escaped, s.fail("short \\u escape")
				}
				for _, h := range s.data[s.pos+1 : s.pos+5] {
					if !isHex(h) {
						return escaped, s.fail("bad \\u escape")
					}
				}
				s.pos += 5
			default:
				return escaped, s.fail("bad escape in string")
			}
		case c < 0x20:
			return escaped, s.fail("control character in string")
		case c < utf8.RuneSelf:
			s.pos++
		default:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return escaped, s.fail("invalid UTF-8 in string")
			}
			s.pos += size
		}
	}
	return escaped, s.fail("unterminated string")
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (s *scanner) number() error {
	d := s.data
	if s.pos < len(d) && d[s.pos] == '-' {
		s.pos++
	}
	if s.pos >= len(d) {
		return s.fail("bad number")
	}
	if d[s.pos] == '0' {
		s.pos++
	} else if d[s.pos] >= '1' && d[s.pos] <= '9' {
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	} else {
		return s.fail("bad number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if s.pos >= len(d) || d[s.pos] < '0' || d[s.pos] > '9' {
			return s.fail("bad number: digit expected after '.'")
		}
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if s.pos >= len(d) || d[s.pos] < '0' || d[s.pos] > '9' {
			return s.fail("bad number: digit expected in exponent")
		}
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	}
	return nil
}

func (s *scanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.fail("bad literal, expected " + lit)
	}
	s.pos += len(lit)
	return nil
}

// Validate checks that data is exactly one JSON value (surrounded by optional
// whitespace), returning a *SyntaxError with the byte offset otherwise.
func Validate(data []byte) error {
	s := scanner{data: data}
	if _, _, err := s.value(0); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(data) {
		return s.fail("unexpected data after the JSON value")
	}
	return nil
}

// ValidateObject is Validate for a value that must be an object.
func ValidateObject(data []byte) error {
	s := scanner{data: data}
	s.skipSpace()
	if s.pos >= len(data) || data[s.pos] != '{' {
		return s.fail("expected a JSON object")
	}
	return Validate(data)
}

// EachArrayElement calls fn with the raw bytes of each element of a JSON array,
// validating as it goes.
func EachArrayElement(data []byte, fn func(index int, elem []byte) error) error {
	s := scanner{data: data}
	s.skipSpace()
	if s.pos >= len(data) || data[s.pos] != '[' {
		return s.fail("expected a JSON array")
	}
	s.pos++
	s.skipSpace()
	if s.pos < len(data) && data[s.pos] == ']' {
		s.pos++
	} else {
		for i := 0; ; i++ {
			start, end, err := s.value(1)
			if err != nil {
				return err
			}
			if err := fn(i, data[start:end]); err != nil {
				return err
			}
			s.skipSpace()
			if s.pos >= len(data) {
				return s.fail("unexpected end of input in array")
			}
			if data[s.pos] == ',' {
				s.pos++
				continue
			}
			if data[s.pos] == ']' {
				s.pos++
				break
			}
			return s.fail("expected ',' or ']' in array")
		}
	}
	s.skipSpace()
	if s.pos != len(data) {
		return s.fail("unexpected data after the JSON array")
	}
	return nil
}

// unquoteKey decodes a key with escapes.
func unquoteKey(raw []byte) string {
	var s string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(quoted, '"')
	quoted = append(quoted, raw...)
	quoted = append(quoted, '"')
	if err := json.Unmarshal(quoted, &s); err != nil {
		return string(raw)
	}
	return s
}
