package sigma

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
)

// modifiers is a decoded `field|m1|m2…` key.
type modifiers struct {
	field string
	// transforms are the value transformations in the order written: contains,
	// startswith, endswith, base64, base64offset, utf16le, utf16be, utf16, wide, windash.
	transforms []string
	all        bool
	cased      bool
	neq        bool
	typ        string // "", "re", "cidr", "exists", "fieldref", "lt", "lte", "gt", "gte"
	reFlags    string // i, m, s
}

// errUnsupported marks a rule feature Vigil does not implement.
type errUnsupported struct{ feature string }

func (e *errUnsupported) Error() string { return "unsupported feature " + e.feature }

// decodeModifiers splits a detection key into its field name and modifiers.
func decodeModifiers(key string) (modifiers, error) {
	parts := strings.Split(key, "|")
	m := modifiers{field: parts[0]}
	for _, p := range parts[1:] {
		switch p {
		case "contains", "startswith", "endswith", "base64", "base64offset",
			"utf16le", "utf16be", "utf16", "wide", "windash":
			m.transforms = append(m.transforms, p)
		case "all":
			m.all = true
		case "cased":
			m.cased = true
		case "neq":
			m.neq = true
		case "re", "cidr", "exists", "fieldref", "lt", "lte", "gt", "gte":
			if m.typ != "" {
				return m, fmt.Errorf("modifiers %s and %s cannot be combined", m.typ, p)
			}
			m.typ = p
		case "i", "ignorecase":
			m.reFlags += "i"
		case "m", "multiline":
			m.reFlags += "m"
		case "s", "dotall":
			m.reFlags += "s"
		case "":
			return m, fmt.Errorf("empty modifier in %q", key)
		default:
			return m, &errUnsupported{feature: "modifier " + p}
		}
	}
	if m.reFlags != "" && m.typ != "re" {
		return m, errors.New("regular expression flags (i, m, s) need the re modifier")
	}
	switch m.typ {
	case "re", "cidr", "exists", "lt", "lte", "gt", "gte":
		for _, t := range m.transforms {
			if t != "contains" && t != "startswith" && t != "endswith" || m.typ != "re" {
				return m, fmt.Errorf("modifier %s cannot be combined with %s", m.typ, t)
			}
		}
	case "fieldref":
		for _, t := range m.transforms {
			if t != "contains" && t != "startswith" && t != "endswith" {
				return m, fmt.Errorf("modifier fieldref cannot be combined with %s", t)
			}
		}
	}
	return m, nil
}

// valueMatcher tests one field value (as text).
type valueMatcher interface {
	match(s string) bool
}

// compileValues turns the YAML values of one detection item into matchers under the
// item's modifiers. v is a scalar node; null values are handled by the caller.
func compileValue(m modifiers, v *node) ([]valueMatcher, error) {
	text := v.text()
	switch m.typ {
	case "re":
		flags := ""
		for _, f := range "ims" {
			if strings.ContainsRune(m.reFlags, f) {
				flags += string(f)
			}
		}
		src := text
		if flags != "" {
			src = "(?" + flags + ")" + src
		}
		re, err := regexp.Compile(src)
		if err != nil {
			return nil, fmt.Errorf("regular expression %q: %v", text, err)
		}
		return []valueMatcher{newReMatcher(re)}, nil
	case "cidr":
		p, err := netip.ParsePrefix(text)
		if err != nil {
			return nil, fmt.Errorf("cidr %q: %v", text, err)
		}
		return []valueMatcher{cidrMatcher{p.Masked()}}, nil
	case "lt", "lte", "gt", "gte":
		if v.kind != nInt && v.kind != nFloat {
			if _, err := strconv.ParseFloat(text, 64); err != nil {
				return nil, fmt.Errorf("%s needs a number, not %q", m.typ, text)
			}
		}
		f, _ := strconv.ParseFloat(text, 64)
		return []valueMatcher{numMatcher{op: m.typ, v: f}}, nil
	}
	if v.kind != nString {
		// Numbers and booleans compare through their text: 404 matches "404", false
		// matches JSON false.
		text = escapeWildcards(text)
	}
	vals := []string{text}
	for _, t := range m.transforms {
		var err error
		vals, err = transform(t, vals)
		if err != nil {
			return nil, err
		}
	}
	out := make([]valueMatcher, 0, len(vals))
	for _, s := range vals {
		out = append(out, compileGlob(s, m.cased))
	}
	return out, nil
}

// transform applies one value modifier to every value (which are in Sigma's escaped
// wildcard syntax).
func transform(t string, vals []string) ([]string, error) {
	var out []string
	for _, s := range vals {
		switch t {
		case "contains":
			out = append(out, addPrefixStar(addSuffixStar(s)))
		case "startswith":
			out = append(out, addSuffixStar(s))
		case "endswith":
			out = append(out, addPrefixStar(s))
		case "windash":
			out = append(out, windash(s)...)
		case "utf16le", "wide", "utf16be", "utf16":
			lit, wild := unescape(s)
			if wild {
				return nil, fmt.Errorf("%s: a value with wildcards cannot be re-encoded", t)
			}
			out = append(out, escapeWildcards(encodeUTF16(t, lit)))
		case "base64":
			lit, wild := unescape(s)
			if wild {
				return nil, errors.New("base64: a value with wildcards cannot be encoded")
			}
			out = append(out, escapeWildcards(base64.StdEncoding.EncodeToString([]byte(lit))))
		case "base64offset":
			lit, wild := unescape(s)
			if wild {
				return nil, errors.New("base64offset: a value with wildcards cannot be encoded")
			}
			for _, e := range base64Offsets(lit) {
				out = append(out, escapeWildcards(e))
			}
		}
	}
	return out, nil
}

// base64Offsets returns the stable middle of lit's base64 encoding at byte offsets 0,
// 1 and 2 inside a longer text, as pySigma computes it.
func base64Offsets(lit string) []string {
	starts := []int{0, 2, 3}
	ends := []int{0, 3, 2}
	out := make([]string, 0, 3)
	for i := 0; i < 3; i++ {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, i), lit...))
		b := starts[i]
		e := len(enc) - ends[(len(lit)+i)%3]
		if b > e {
			continue
		}
		out = append(out, enc[b:e])
	}
	return out
}

func encodeUTF16(t, s string) string {
	u := utf16.Encode([]rune(s))
	var b []byte
	if t == "utf16" {
		b = append(b, 0xff, 0xfe)
	}
	for _, c := range u {
		if t == "utf16be" {
			b = append(b, byte(c>>8), byte(c))
		} else {
			b = append(b, byte(c), byte(c>>8))
		}
	}
	return string(b)
}

// windash returns s with every flag-introducing - or / replaced by each of the dash
// characters Windows accepts, in all combinations (pySigma: \B[-/]\b).
func windash(s string) []string {
	dashes := []string{"-", "/", "\u2013", "\u2014", "\u2015"}
	out := []string{""}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c == '-' || c == '/') && (i == 0 || !isWordByte(s[i-1])) && i+1 < len(s) && isWordByte(s[i+1]) {
			if len(out) > 625 { // 5^4: stop expanding beyond four flags
				for j := range out {
					out[j] += string(c)
				}
				continue
			}
			next := make([]string, 0, len(out)*len(dashes))
			for _, o := range out {
				for _, d := range dashes {
					next = append(next, o+d)
				}
			}
			out = next
			continue
		}
		for j := range out {
			out[j] += string(c)
		}
	}
	return out
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// escapeWildcards makes s match itself literally.
func escapeWildcards(s string) string {
	if !strings.ContainsAny(s, `*?\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '*' || s[i] == '?' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescape returns the literal text of a Sigma value and whether it holds an
// unescaped wildcard.
func unescape(s string) (string, bool) {
	toks := lexGlob(s)
	var b strings.Builder
	wild := false
	for _, t := range toks {
		if t.wild != 0 {
			wild = true
			b.WriteByte(t.wild)
			continue
		}
		b.WriteByte(t.c)
	}
	return b.String(), wild
}

func endsWithStar(s string) bool {
	toks := lexGlob(s)
	return len(toks) > 0 && toks[len(toks)-1].wild == '*'
}

func addSuffixStar(s string) string {
	if endsWithStar(s) {
		return s
	}
	return s + "*"
}

func addPrefixStar(s string) string {
	if strings.HasPrefix(s, "*") {
		return s
	}
	return "*" + s
}

// globTok is one character of a Sigma value: a literal byte or a wildcard.
type globTok struct {
	c    byte
	wild byte // '*' or '?' for a wildcard, 0 for a literal
}

// lexGlob reads Sigma's escaping: \ escapes *, ? and itself; a \ before anything
// else is a literal backslash.
func lexGlob(s string) []globTok {
	toks := make([]globTok, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?' || s[i+1] == '\\') {
				toks = append(toks, globTok{c: s[i+1]})
				i++
				continue
			}
			toks = append(toks, globTok{c: '\\'})
		case '*', '?':
			toks = append(toks, globTok{wild: c})
		default:
			toks = append(toks, globTok{c: c})
		}
	}
	return toks
}
