// Package jsonscan is a small validating JSON scanner shared by the parsers of
// JSON-based formats (CloudTrail, CloudWatch Logs subscriptions). Those parsers need
// only a few known keys out of every record and the byte extent of records and of some
// nested values; walking the bytes once and borrowing slices of the input is several
// times faster than encoding/json and allocates nothing for unescaped strings.
// Everything the scanner accepts is valid JSON (RFC 8259), so the extents it returns
// can be handed to event.Raw.
package jsonscan

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting so that hostile input cannot exhaust the stack.
const MaxDepth = 512

// ErrEOF is returned when the input ends inside a value.
var ErrEOF = errors.New("unexpected end of JSON input")

// Scanner walks Data from Pos. The zero value with Data set scans Data from its
// start; callers may read and advance Pos themselves (for instance past a '{' or
// '[' they have peeked) and slice Data to take the extent of what was consumed.
type Scanner struct {
	Data []byte
	Pos  int
}

// Errorf returns an error that names the current byte offset.
func (s *Scanner) Errorf(format string, args ...any) error {
	return fmt.Errorf("byte offset %d: %s", s.Pos, fmt.Sprintf(format, args...))
}

// SkipWS advances past insignificant whitespace.
func (s *Scanner) SkipWS() {
	for s.Pos < len(s.Data) {
		switch s.Data[s.Pos] {
		case ' ', '\t', '\n', '\r':
			s.Pos++
		default:
			return
		}
	}
}

// Peek returns the next non-space byte, or 0 at the end.
func (s *Scanner) Peek() byte {
	s.SkipWS()
	if s.Pos < len(s.Data) {
		return s.Data[s.Pos]
	}
	return 0
}

// Expect consumes c, after any whitespace, or reports what stands there instead.
func (s *Scanner) Expect(c byte) error {
	s.SkipWS()
	if s.Pos >= len(s.Data) {
		return s.Errorf("expected %q, got end of input", c)
	}
	if s.Data[s.Pos] != c {
		return s.Errorf("expected %q, got %q", c, s.Data[s.Pos])
	}
	s.Pos++
	return nil
}

// NextMember advances to the next member of an object whose '{' was consumed. first
// must start true; it returns the raw key (without quotes) or ok=false after the '}'.
func (s *Scanner) NextMember(first *bool) (key []byte, ok bool, err error) {
	c := s.Peek()
	if c == '}' {
		s.Pos++
		return nil, false, nil
	}
	if !*first {
		if c != ',' {
			if c == 0 {
				return nil, false, s.Errorf("unterminated object")
			}
			return nil, false, s.Errorf("expected ',' or '}' in object, got %q", c)
		}
		s.Pos++
		c = s.Peek()
	}
	*first = false
	if c != '"' {
		if c == 0 {
			return nil, false, s.Errorf("unterminated object")
		}
		return nil, false, s.Errorf("expected object key, got %q", c)
	}
	key, _, err = s.ReadString()
	if err != nil {
		return nil, false, err
	}
	if err := s.Expect(':'); err != nil {
		return nil, false, err
	}
	s.SkipWS()
	return key, true, nil
}

// NextElement advances to the next element of an array whose '[' was consumed. first
// must start true; it returns ok=false after the ']'.
func (s *Scanner) NextElement(first *bool) (ok bool, err error) {
	c := s.Peek()
	if c == ']' {
		s.Pos++
		return false, nil
	}
	if !*first {
		if c != ',' {
			if c == 0 {
				return false, s.Errorf("unterminated array")
			}
			return false, s.Errorf("expected ',' or ']' in array, got %q", c)
		}
		s.Pos++
		if s.Peek() == ']' {
			return false, s.Errorf("trailing ',' in array")
		}
	}
	*first = false
	s.SkipWS()
	return true, nil
}

// ReadString reads a string starting at its opening quote and returns its body
// (between the quotes, still escaped) and whether it holds escapes.
func (s *Scanner) ReadString() (body []byte, escaped bool, err error) {
	if s.Pos >= len(s.Data) || s.Data[s.Pos] != '"' {
		return nil, false, s.Errorf("expected string")
	}
	start := s.Pos + 1
	i := start
	d := s.Data
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.Pos = i + 1
			return d[start:i], escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				s.Pos = i
				return nil, false, ErrEOF
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) {
					s.Pos = i
					return nil, false, ErrEOF
				}
				for _, h := range d[i+2 : i+6] {
					if unhex(h) < 0 {
						s.Pos = i
						return nil, false, s.Errorf("invalid \\u escape in string")
					}
				}
				i += 6
			default:
				s.Pos = i
				return nil, false, s.Errorf("invalid escape in string")
			}
		case c < 0x20:
			s.Pos = i
			return nil, false, s.Errorf("control character in string")
		default:
			i++
		}
	}
	s.Pos = len(d)
	return nil, false, s.Errorf("unterminated string")
}

// SkipValue validates and skips one value and returns its extent in Data. depth is
// the nesting depth of the value; values nested deeper than MaxDepth are rejected.
func (s *Scanner) SkipValue(depth int) (start, end int, err error) {
	s.SkipWS()
	start = s.Pos
	if s.Pos >= len(s.Data) {
		return start, start, ErrEOF
	}
	if depth > MaxDepth {
		return start, start, s.Errorf("nesting deeper than %d", MaxDepth)
	}
	switch c := s.Data[s.Pos]; c {
	case '"':
		_, _, err = s.ReadString()
	case '{':
		s.Pos++
		first := true
		for {
			var ok bool
			_, ok, err = s.NextMember(&first)
			if err != nil || !ok {
				break
			}
			if _, _, err = s.SkipValue(depth + 1); err != nil {
				break
			}
		}
	case '[':
		s.Pos++
		first := true
		for {
			var ok bool
			ok, err = s.NextElement(&first)
			if err != nil || !ok {
				break
			}
			if _, _, err = s.SkipValue(depth + 1); err != nil {
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
			err = s.Errorf("unexpected %q", c)
		}
	}
	return start, s.Pos, err
}

func (s *Scanner) literal(lit string) error {
	if len(s.Data)-s.Pos < len(lit) || string(s.Data[s.Pos:s.Pos+len(lit)]) != lit {
		return s.Errorf("invalid literal")
	}
	s.Pos += len(lit)
	return nil
}

func (s *Scanner) number() error {
	d, i := s.Data, s.Pos
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
		s.Pos = i
		return s.Errorf("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.Pos = i
			return s.Errorf("invalid number")
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
			s.Pos = i
			return s.Errorf("invalid number")
		}
	}
	s.Pos = i
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

// AppendUnescaped appends the decoded text of a string body that ReadString accepted.
// Unpaired surrogates become U+FFFD, as encoding/json does.
func AppendUnescaped(dst, body []byte) []byte {
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

// AppendCompact appends a value that SkipValue accepted without insignificant
// whitespace, and with invalid UTF-8 inside strings replaced by \ufffd so that the
// result is also acceptable to strict JSON readers such as Elasticsearch's.
func AppendCompact(dst, v []byte) []byte {
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

// Members calls fn for each member of the object at the scanner, with the scanner at
// the member's value; fn must consume the value. A value that is not an object is
// skipped.
func (s *Scanner) Members(depth int, fn func(key []byte) error) error {
	if s.Peek() != '{' {
		_, _, err := s.SkipValue(depth)
		return err
	}
	if depth > MaxDepth {
		return s.Errorf("nesting deeper than %d", MaxDepth)
	}
	s.Pos++
	first := true
	for {
		key, ok, err := s.NextMember(&first)
		if err != nil || !ok {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
	}
}

// Skip validates and skips one value at the given depth.
func (s *Scanner) Skip(depth int) error {
	_, _, err := s.SkipValue(depth)
	return err
}
