package elasticsearchsink

import (
	"github.com/vigil-sec/vigil/internal/sink/docscan"

	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// parseTimestamp reads an @timestamp token; ok is false when it is absent or not
// RFC 3339.
func parseTimestamp(tok []byte) (time.Time, bool) {
	if len(tok) < 2 || tok[0] != '"' {
		return time.Time{}, false
	}
	inner := tok[1 : len(tok)-1]
	// Vigil writes UTC with a Z: read the date and hour straight from the digits.
	if len(inner) >= 20 && inner[len(inner)-1] == 'Z' && inner[4] == '-' && inner[7] == '-' && inner[10] == 'T' {
		y, ok1 := docscan.Digits(inner[0:4])
		mo, ok2 := docscan.Digits(inner[5:7])
		d, ok3 := docscan.Digits(inner[8:10])
		h, ok4 := docscan.Digits(inner[11:13])
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
			v, ok := docscan.BytesValue(vals[p.field])
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
