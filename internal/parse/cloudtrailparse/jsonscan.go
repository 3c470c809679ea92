package cloudtrailparse

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// A small validating JSON scanner. CloudTrail parsing needs only a few dozen known keys
// out of every record, the byte extent of each record (for event.original) and of a few
// nested objects (kept as flattened JSON); walking the bytes once and borrowing slices of
// the input is several times faster than encoding/json and allocates nothing for
// unescaped strings. Everything the scanner accepts is valid JSON (RFC 8259), so the
// extents it returns can be handed to event.Raw.

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 512

var errEOF = errors.New("unexpected end of JSON input")

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("byte offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipWS()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	s.skipWS()
	if s.pos >= len(s.data) {
		return s.errorf("expected %q, got end of input", c)
	}
	if s.data[s.pos] != c {
		return s.errorf("expected %q, got %q", c, s.data[s.pos])
	}
	s.pos++
	return nil
}

// nextMember advances to the next member of an object whose '{' was consumed. first
// must start true; it returns the raw key (without quotes) or ok=false after the '}'.
func (s *scanner) nextMember(first *bool) (key []byte, ok bool, err error) {
	c := s.peek()
	if c == '}' {
		s.pos++
		return nil, false, nil
	}
	if !*first {
		if c != ',' {
			if c == 0 {
				return nil, false, s.errorf("unterminated object")
			}
			return nil, false, s.errorf("expected ',' or '}' in object, got %q", c)
		}
		s.pos++
		c = s.peek()
	}
	*first = false
	if c != '"' {
		if c == 0 {
			return nil, false, s.errorf("unterminated object")
		}
		return nil, false, s.errorf("expected object key, got %q", c)
	}
	key, _, err = s.readString()
	if err != nil {
		return nil, false, err
	}
	if err := s.expect(':'); err != nil {
		return nil, false, err
	}
	s.skipWS()
	return key, true, nil
}

// nextElement advances to the next element of an array whose '[' was consumed.
func (s *scanner) nextElement(first *bool) (ok bool, err error) {
	c := s.peek()
	if c == ']' {
		s.pos++
		return false, nil
	}
	if !*first {
		if c != ',' {
			if c == 0 {
				return false, s.errorf("unterminated array")
			}
			return false, s.errorf("expected ',' or ']' in array, got %q", c)
		}
		s.pos++
		if s.peek() == ']' {
			return false, s.errorf("trailing ',' in array")
		}
	}
	*first = false
	s.skipWS()
	return true, nil
}

// readString reads a string starting at its opening quote and returns its body
// (between the quotes, still escaped) and whether it holds escapes.
func (s *scanner) readString() (body []byte, escaped bool, err error) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false, s.errorf("expected string")
	}
	start := s.pos + 1
	i := start
	d := s.data
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return d[start:i], escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				s.pos = i
				return nil, false, errEOF
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) {
					s.pos = i
					return nil, false, errEOF
				}
				for _, h := range d[i+2 : i+6] {
					if unhex(h) < 0 {
						s.pos = i
						return nil, false, s.errorf("invalid \\u escape in string")
					}
				}
				i += 6
			default:
				s.pos = i
				return nil, false, s.errorf("invalid escape in string")
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.errorf("control character in string")
		default:
			i++
		}
	}
	s.pos = len(d)
	return nil, false, s.errorf("unterminated string")
}

// skipValue validates and skips one value and returns its extent.
func (s *scanner) skipValue(depth int) (start, end int, err error) {
	s.skipWS()
	start = s.pos
	if s.pos >= len(s.data) {
		return start, start, errEOF
	}
	if depth > maxDepth {
		return start, start, s.errorf("nesting deeper than %d", maxDepth)
	}
	switch c := s.data[s.pos]; c {
	case '"':
		_, _, err = s.readString()
	case '{':
		s.pos++
		first := true
		for {
			var ok bool
			_, ok, err = s.nextMember(&first)
			if err != nil || !ok {
				break
			}
			if _, _, err = s.skipValue(depth + 1); err != nil {
				break
			}
		}
	case '[':
		s.pos++
		first := true
		for {
			var ok bool
			ok, err = s.nextElement(&first)
			if err != nil || !ok {
				break
			}
			if _, _, err = s.skipValue(depth + 1); err != nil {
				break
			}
		}
	case 't':
		err = s.literal("true")
	case 'f':
		err = s.literal("false")
	case 'n':
		err = s.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			err = s.number()
		} else {
			err = s.errorf("unexpected %q", c)
		}
	}
	return start, s.pos, err
}

func (s *scanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.errorf("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) number() error {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return s.errorf("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return s.errorf("invalid number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return s.errorf("invalid number")
		}
	}
	s.pos = i
	return nil
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// appendUnescaped appends the decoded text of a string body that readString accepted.
// Unpaired surrogates become U+FFFD, as encoding/json does.
func appendUnescaped(dst, body []byte) []byte {
	for i := 0; i < len(body); {
		c := body[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(body) {
			return dst
		}
		switch body[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(body[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(body[i+2:])); r2 != utf8.RuneError {
						i += 6
						dst = utf8.AppendRune(dst, r2)
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, body[i+1])
		}
		i += 2
	}
	return dst
}

func hex4(b []byte) rune {
	if len(b) < 4 {
		return utf8.RuneError
	}
	var r rune
	for _, c := range b[:4] {
		v := unhex(c)
		if v < 0 {
			return utf8.RuneError
		}
		r = r<<4 | v
	}
	return r
}

// appendCompact appends a value that skipValue accepted without insignificant
// whitespace, and with invalid UTF-8 inside strings replaced by \ufffd so that the
// result is also acceptable to strict JSON readers such as Elasticsearch's.
func appendCompact(dst, v []byte) []byte {
	inString := false
	for i := 0; i < len(v); {
		c := v[i]
		if !inString {
			switch c {
			case ' ', '\t', '\n', '\r':
				i++
				continue
			case '"':
				inString = true
			}
			dst = append(dst, c)
			i++
			continue
		}
		switch {
		case c == '\\':
			if i+1 >= len(v) {
				return dst // cannot happen for a validated value
			}
			dst = append(dst, c, v[i+1])
			i += 2
		case c == '"':
			inString = false
			dst = append(dst, c)
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, v[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}
