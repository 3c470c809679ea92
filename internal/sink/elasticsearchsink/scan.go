package elasticsearchsink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// lookup finds the values at dotted paths (at most 64) in one JSON object without
// decoding it: out[i] is set to the raw JSON token at paths[i] (a string keeps its
// quotes and escapes), or nil when absent. Members not on a wanted path are skipped
// by bracket counting, and the scan stops once every path is found; ECS documents
// sort "@timestamp" and "event" early, so the long fields after them (message,
// event.original) are usually never read. Malformed input gives false, never a
// panic.
func lookup(doc []byte, paths []string, out [][]byte) bool {
	for i := range out {
		out[i] = nil
	}
	s := scanner{doc: doc, left: len(paths)}
	s.ws()
	if s.i >= len(doc) || doc[s.i] != '{' {
		return false
	}
	var all uint64
	if len(paths) >= 64 {
		all = ^uint64(0)
	} else {
		all = 1<<len(paths) - 1
	}
	return s.object(paths, all, 0, out, 0)
}

type scanner struct {
	doc  []byte
	i    int
	left int // paths not found yet
}

func (s *scanner) ws() {
	for s.i < len(s.doc) {
		switch s.doc[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object scans the object at s.i; cand are the paths that may lie inside it, off
// where their remainder starts.
func (s *scanner) object(paths []string, cand uint64, off int, out [][]byte, depth int) bool {
	if depth > 32 {
		return false
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.doc) && s.doc[s.i] == '}' {
		s.i++
		return true
	}
	for {
		ks, ke, ok := s.str()
		if !ok {
			return false
		}
		key := s.doc[ks+1 : ke-1]
		s.ws()
		if s.i >= len(s.doc) || s.doc[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		var exact, deeper uint64
		for c := cand; c != 0; c &= c - 1 {
			j := bits.TrailingZeros64(c)
			p := paths[j][off:]
			if len(p) < len(key) || p[:len(key)] != string(key) {
				continue
			}
			if len(p) == len(key) {
				exact |= 1 << j
			} else if p[len(key)] == '.' {
				deeper |= 1 << j
			}
		}
		if deeper != 0 && s.i < len(s.doc) && s.doc[s.i] == '{' {
			if !s.object(paths, deeper, off+len(key)+1, out, depth+1) {
				return false
			}
		} else {
			vs := s.i
			if !s.skip() {
				return false
			}
			for c := exact; c != 0; c &= c - 1 {
				j := bits.TrailingZeros64(c)
				if out[j] == nil {
					out[j] = s.doc[vs:s.i]
					s.left--
				}
			}
		}
		if s.left == 0 {
			return true
		}
		s.ws()
		if s.i >= len(s.doc) {
			return false
		}
		switch s.doc[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// str scans the string at s.i and returns its bounds, quotes included.
func (s *scanner) str() (start, end int, ok bool) {
	if s.i >= len(s.doc) || s.doc[s.i] != '"' {
		return 0, 0, false
	}
	start = s.i
	j := s.i + 1
	for {
		k := bytes.IndexByte(s.doc[j:], '"')
		if k < 0 {
			return 0, 0, false
		}
		j += k
		n := 0
		for m := j - 1; m > start && s.doc[m] == '\\'; m-- {
			n++
		}
		if n%2 == 0 {
			s.i = j + 1
			return start, s.i, true
		}
		j++
	}
}

// skip passes over one value of any kind (not validated beyond its brackets).
func (s *scanner) skip() bool {
	depth := 0
	for s.i < len(s.doc) {
		switch s.doc[s.i] {
		case '"':
			if _, _, ok := s.str(); !ok {
				return false
			}
			if depth == 0 {
				return true
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return true // the end of the enclosing object ends a scalar
			}
			depth--
			if depth == 0 {
				s.i++
				return true
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return true
			}
		}
		s.i++
	}
	return false
}

// stringValue returns the text of a scalar token: a string unquoted (and unescaped
// when needed), a number or boolean as written; ok is false for null, objects,
// arrays and nil.
func stringValue(tok []byte) (string, bool) {
	if len(tok) == 0 {
		return "", false
	}
	switch tok[0] {
	case '"':
		if len(tok) < 2 {
			return "", false
		}
		inner := tok[1 : len(tok)-1]
		if bytes.IndexByte(inner, '\\') < 0 {
			return string(inner), true
		}
		var v string
		if err := json.Unmarshal(tok, &v); err != nil {
			return "", false
		}
		return v, true
	case '{', '[', 'n':
		return "", false
	}
	return string(tok), true
}

// bytesValue is stringValue without a copy when the token has no escapes.
func bytesValue(tok []byte) ([]byte, bool) {
	if len(tok) >= 2 && tok[0] == '"' && bytes.IndexByte(tok, '\\') < 0 {
		return tok[1 : len(tok)-1], true
	}
	v, ok := stringValue(tok)
	return []byte(v), ok
}

// parseTimestamp reads an @timestamp token; ok is false when it is absent or not
// RFC 3339.
func parseTimestamp(tok []byte) (time.Time, bool) {
	if len(tok) < 2 || tok[0] != '"' {
		return time.Time{}, false
	}
	inner := tok[1 : len(tok)-1]
	// Vigil writes UTC with a Z: read the date and hour straight from the digits.
	if len(inner) >= 20 && inner[len(inner)-1] == 'Z' && inner[4] == '-' && inner[7] == '-' && inner[10] == 'T' {
		y, ok1 := digits(inner[0:4])
		mo, ok2 := digits(inner[5:7])
		d, ok3 := digits(inner[8:10])
		h, ok4 := digits(inner[11:13])
		if ok1 && ok2 && ok3 && ok4 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 {
			return time.Date(y, time.Month(mo), d, h, 0, 0, 0, time.UTC), true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(inner))
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// unknown stands for a missing field in an index name. Never modified.
var unknown = []byte("unknown")

// indexTemplate is a parsed index setting.
type indexTemplate struct {
	parts   []indexPart
	fields  []string // the distinct field paths it uses
	hasTime bool
	static  string // the index name when it uses neither fields nor time
}

type indexPart struct {
	lit   string
	field int  // index into fields, or -1
	verb  byte // 'Y', 'm', 'd', 'H', or 0
}

// parseIndex parses "logs-{event.dataset}-%Y.%m.%d".
func parseIndex(s string) (*indexTemplate, error) {
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	t := &indexTemplate{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, indexPart{lit: lit.String(), field: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%q: '{' at byte %d is not closed", s, i)
			}
			path := s[i+1 : i+end]
			if path == "" || strings.ContainsAny(path, "{ ") || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") {
				return nil, fmt.Errorf("%q: {%s} at byte %d is not a field path", s, path, i)
			}
			flush()
			fi := -1
			for k, f := range t.fields {
				if f == path {
					fi = k
				}
			}
			if fi < 0 {
				if len(t.fields) >= 16 {
					return nil, fmt.Errorf("%q: more than 16 fields", s)
				}
				t.fields = append(t.fields, path)
				fi = len(t.fields) - 1
			}
			t.parts = append(t.parts, indexPart{field: fi})
			i += end
		case c == '}':
			return nil, fmt.Errorf("%q: '}' at byte %d without '{'", s, i)
		case c == '%':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("%q: '%%' at the end; write %%%% for a literal %%", s)
			}
			switch v := s[i+1]; v {
			case 'Y', 'm', 'd', 'H':
				flush()
				t.parts = append(t.parts, indexPart{field: -1, verb: v})
				t.hasTime = true
			case '%':
				lit.WriteByte('%')
			default:
				return nil, fmt.Errorf("%q: %%%c is not one of %%Y %%m %%d %%H %%%%", s, v)
			}
			i++
		default:
			if c >= 'A' && c <= 'Z' {
				return nil, fmt.Errorf("%q: index names must be lower case", s)
			}
			if !indexByteOK(c) {
				return nil, fmt.Errorf("%q: %q cannot be in an index name", s, c)
			}
			lit.WriteByte(c)
		}
	}
	flush()
	if len(t.parts) > 0 && t.parts[0].lit != "" && strings.ContainsAny(t.parts[0].lit[:1], "-_+") {
		return nil, fmt.Errorf("%q: index names cannot start with '-', '_' or '+'", s)
	}
	if len(t.fields) == 0 && !t.hasTime {
		t.static = s
		if strings.Contains(s, "%%") {
			t.static = strings.ReplaceAll(s, "%%", "%")
		}
	}
	return t, nil
}

// indexByteOK reports whether c may appear in an index name as written (and in a
// JSON string without escaping).
func indexByteOK(c byte) bool {
	if c < 0x20 || c == 0x7f {
		return false
	}
	switch c {
	case '\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':':
		return false
	}
	return true
}

// appendValue appends a field's value to an index name, lower-cased, with the
// characters an index name cannot hold replaced by '_'.
func appendValue(dst []byte, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 {
			v = bytes.ToValidUTF8(bytes.ToLower(v), []byte("_"))
			break
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c < 0x80 && !indexByteOK(c):
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// render appends the index name of one document. vals are the raw tokens of
// t.fields; ts its time; dataset the batch's, for a missing event.dataset.
func (t *indexTemplate) render(dst []byte, vals [][]byte, ts time.Time, dataset string) []byte {
	if t.static != "" {
		return append(dst, t.static...)
	}
	for _, p := range t.parts {
		switch {
		case p.lit != "":
			dst = append(dst, p.lit...)
		case p.field >= 0:
			v, ok := bytesValue(vals[p.field])
			if !ok || len(v) == 0 {
				v = unknown
				if t.fields[p.field] == "event.dataset" && dataset != "" {
					v = []byte(dataset)
				}
			}
			dst = appendValue(dst, v)
		case p.verb != 0:
			dst = appendTimePart(dst, p.verb, ts)
		}
	}
	return dst
}

func appendTimePart(dst []byte, verb byte, t time.Time) []byte {
	var n, w int
	switch verb {
	case 'Y':
		n, w = t.Year(), 4
	case 'm':
		n, w = int(t.Month()), 2
	case 'd':
		n, w = t.Day(), 2
	case 'H':
		n, w = t.Hour(), 2
	}
	var buf [8]byte
	i := len(buf)
	for ; w > 0 || n > 0; w-- {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if i == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}
