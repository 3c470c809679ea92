// Package docscan reads a few fields of an ECS JSON document without decoding it,
// for sinks that frame documents verbatim (Elasticsearch action lines, Splunk HEC
// envelopes) and only need their event.id, event.dataset or @timestamp.
package docscan

import (
	"bytes"
	"encoding/json"
	"math/bits"
)

// Lookup finds the values at dotted paths (at most 64) in one JSON object without
// decoding it: out[i] is set to the raw JSON token at paths[i] (a string keeps its
// quotes and escapes), or nil when absent. Members not on a wanted path are skipped
// by bracket counting, and the scan stops once every path is found; ECS documents
// sort "@timestamp" and "event" early, so the long fields after them (message,
// event.original) are usually never read. Malformed input gives false, never a
// panic.
func Lookup(doc []byte, paths []string, out [][]byte) bool {
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

// StringValue returns the text of a scalar token: a string unquoted (and unescaped
// when needed), a number or boolean as written; ok is false for null, objects,
// arrays and nil.
func StringValue(tok []byte) (string, bool) {
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

// BytesValue is StringValue without a copy when the token has no escapes.
func BytesValue(tok []byte) ([]byte, bool) {
	if len(tok) >= 2 && tok[0] == '"' && bytes.IndexByte(tok, '\\') < 0 {
		return tok[1 : len(tok)-1], true
	}
	v, ok := StringValue(tok)
	return []byte(v), ok
}

// Digits reads a run of ASCII digits; ok is false for any other byte.
func Digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
