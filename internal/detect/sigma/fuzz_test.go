package sigma

import (
	"strings"
	"testing"
)

// FuzzCondition feeds arbitrary conditions to the parser: it must return an
// expression or an error, never panic, and the expression must evaluate.
func FuzzCondition(f *testing.F) {
	for _, s := range []string{
		"selection", "selection and not filter", "1 of selection_* and not 1 of filter_*",
		"all of them", "1 of them", "any of sel*", "(sel or filter) and not (x1 or _hidden)",
		"not not not sel", "sel | count() > 5", "((((sel))))", "all of filter_* or sel",
		"selection_event_source and 1 of selection_action_* and 1 of selection_status_*",
	} {
		f.Add(s)
	}
	names := []string{"sel", "selection", "selection_event_source", "selection_action_a", "selection_status_null",
		"filter", "filter_a", "x1", "_hidden"}
	f.Fuzz(func(t *testing.T, src string) {
		x, err := parseCondition(src, names)
		if err != nil {
			return
		}
		m := &matcher{cur: &compiled{searches: make([]search, len(names))}}
		_ = x.eval(m)
	})
}

// FuzzModifiers feeds arbitrary detection keys and values to the modifier decoder
// and value compiler, then matches the result against the value itself.
func FuzzModifiers(f *testing.F) {
	for _, s := range [][2]string{
		{"field|contains", "abc"}, {"field|contains|all", "a*b?c"}, {"field|re|i", "^a.+b$"},
		{"field|cidr", "10.0.0.0/8"}, {"field|base64offset|contains", "IEX"},
		{"field|wide|base64", "whoami"}, {"field|windash|contains", " -enc /x"},
		{"field|lt", "5"}, {"field|endswith", `\*x\\`}, {"field|utf16be|base64offset|contains", "x"},
		{"field|startswith|cased", "AbC"}, {"field|re|m|s", "(?m)^x"}, {"field|exists", "true"},
		{"field|fieldref|contains", "other"}, {"field|neq", "x"}, {"field|expand", "%x%"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		mods, err := decodeModifiers(key)
		if err != nil || mods.typ == "exists" || mods.typ == "fieldref" {
			return
		}
		if strings.Count(value, "-")+strings.Count(value, "/") > 6 {
			return // windash expands combinatorially; bounded in windash itself
		}
		ms, err := compileValue(mods, &node{kind: nString, str: value})
		if err != nil {
			return
		}
		v := newMulti(ms)
		_ = v.match(value)
		for _, m := range ms {
			_ = m.match(value)
			_ = m.match(strings.ToUpper(value))
		}
		// A plain value with no wildcard and no transform matches itself.
		if len(mods.transforms) == 0 && mods.typ == "" && !strings.ContainsAny(value, `*?\`) {
			if !ms[0].match(value) {
				t.Errorf("%q does not match itself", value)
			}
		}
	})
}

// FuzzGlob checks the glob matcher against a regexp-free reference.
func FuzzGlob(f *testing.F) {
	f.Add("a*b?c", "axxbyc")
	f.Add(`\*a*`, "*abc")
	f.Add("**", "")
	f.Fuzz(func(t *testing.T, pat, v string) {
		if len(pat) > 64 || len(v) > 64 {
			return
		}
		got := compileGlob(pat, true).match(v)
		want := refGlob(lexGlob(pat), v)
		if got != want {
			t.Errorf("%q ~ %q: got %v, reference %v", pat, v, got, want)
		}
	})
}

// refGlob is a plain recursive wildcard matcher (case-sensitive, ? = one byte).
func refGlob(p []globTok, v string) bool {
	if len(p) == 0 {
		return v == ""
	}
	switch p[0].wild {
	case '*':
		for i := 0; i <= len(v); i++ {
			if refGlob(p[1:], v[i:]) {
				return true
			}
		}
		return false
	case '?':
		return v != "" && refGlob(p[1:], v[1:])
	}
	return v != "" && v[0] == p[0].c && refGlob(p[1:], v[1:])
}
