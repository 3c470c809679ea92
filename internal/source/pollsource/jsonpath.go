package pollsource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// path is a compiled JSON path of the small subset the poll source reads: `$`,
// `$.a.b` (object members) and `[*]` (every element of an array) after any step, as
// in `$.data[*]` or `$.items[*].events`.
type path []step

type step struct {
	key      string
	wildcard bool
}

// compilePath parses a path of the subset.
func compilePath(s string) (path, error) {
	if s == "" || s[0] != '$' {
		return nil, fmt.Errorf("want a JSON path starting with $ ($, $.a.b, $.a[*]), got %q", s)
	}
	var p path
	rest := s[1:]
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "[*]"):
			p = append(p, step{wildcard: true})
			rest = rest[3:]
		case rest[0] == '.':
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				return nil, fmt.Errorf("empty member name in %q", s)
			}
			p = append(p, step{key: rest[:end]})
			rest = rest[end:]
		default:
			return nil, fmt.Errorf("unsupported syntax at %q in %q (the subset is $, .member and [*])", rest, s)
		}
	}
	return p, nil
}

// eval returns the values at p in doc, their bytes as in doc. A member missing on
// the way gives no value.
func (p path) eval(doc json.RawMessage) ([]json.RawMessage, error) {
	cur := []json.RawMessage{doc}
	for _, st := range p {
		var next []json.RawMessage
		for _, v := range cur {
			v = bytes.TrimSpace(v)
			if st.wildcard {
				if len(v) == 0 || v[0] != '[' {
					continue
				}
				var arr []json.RawMessage
				if err := json.Unmarshal(v, &arr); err != nil {
					return nil, err
				}
				next = append(next, arr...)
				continue
			}
			if len(v) == 0 || v[0] != '{' {
				continue
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(v, &obj); err != nil {
				return nil, err
			}
			if m, ok := obj[st.key]; ok {
				next = append(next, m)
			}
		}
		cur = next
	}
	return cur, nil
}

// records returns the records at p: the values, with an array value standing for
// its elements (so `$` of `[{…},{…}]` is two records, as is `$.items`).
func (p path) records(doc json.RawMessage) ([]json.RawMessage, error) {
	vals, err := p.eval(doc)
	if err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for _, v := range vals {
		v = bytes.TrimSpace(v)
		if len(v) > 0 && v[0] == '[' {
			var arr []json.RawMessage
			if err := json.Unmarshal(v, &arr); err != nil {
				return nil, err
			}
			out = append(out, arr...)
			continue
		}
		if string(v) == "null" {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// scalar returns the first value at p as text: a string's content, a number's
// digits; "" when absent or null.
func (p path) scalar(doc json.RawMessage) (string, error) {
	vals, err := p.eval(doc)
	if err != nil || len(vals) == 0 {
		return "", err
	}
	v := bytes.TrimSpace(vals[0])
	if len(v) > 0 && v[0] == '"' {
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	}
	if string(v) == "null" {
		return "", nil
	}
	return string(v), nil
}
