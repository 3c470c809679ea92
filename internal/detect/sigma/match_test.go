package sigma

import (
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/event"
)

// ruleMatches compiles one rule with the given detection (YAML, indented by the
// helper) for the syslog dataset and matches it against an event of fields.
func ruleMatches(t *testing.T, detection string, fields map[string]event.Value) bool {
	t.Helper()
	src := "title: t\nid: test-rule\nlogsource: {product: linux}\ndetection:\n"
	for _, l := range strings.Split(strings.TrimSpace(detection), "\n") {
		src += "  " + l + "\n"
	}
	rules, ps := ParseRules("test.yml", []byte(src))
	if ps != nil {
		t.Fatalf("%v\n%s", ps, src)
	}
	set, err := Compile(rules, BuiltinFieldMapping())
	if err != nil {
		t.Fatal(err)
	}
	e := &event.Event{}
	for k, v := range fields {
		e.Set(k, v)
	}
	hit := false
	set.NewEvaluator().Match(e, "syslog", func(*Rule) { hit = true })
	return hit
}

func s(v string) event.Value { return event.String(v) }

func TestModifiers(t *testing.T) {
	ev := map[string]event.Value{
		"a":              s("Hello World"),
		"path":           s(`C:\Windows\System32\cmd.exe`),
		"n":              event.Int(404),
		"f":              event.Float(2.5),
		"b":              event.Bool(false),
		"ip":             s("10.1.2.3"),
		"ip6":            s("2001:db8::5"),
		"arr":            event.Strings([]string{"one", "two"}),
		"cmd":            s("powershell -enc " + "SQBFAFgA"),
		"b64":            s("aGVsbG8gd29ybGQ="),
		"other":          s("hello"),
		"nul":            {},
		"j":              event.Raw([]byte(`{"x":{"y":[{"z":"deep"},{"z":"other"}]},"t":true,"n":3}`)),
		"message":        s("kernel: syscall 42 out of bounds"),
		"event.original": s("<13>kernel: syscall 42 out of bounds"),
		"cs":             s("MiXeD"),
		"nl":             s("a\nb"),
		"bs":             s(`a*b`),
		"utf":            s("dwBoAG8AYQBtAGkA"),
		"dash":           s("cmd /c whoami"),
		"emdash":         s("cmd \u2014c whoami"),
		"ref1":           s("Same"),
		"ref2":           s("same"),
		"ref3":           s("something else"),
	}
	tests := []struct {
		name, det string
		want      bool
	}{
		{"equal case-insensitive", "sel: {a: hello world}\ncondition: sel", true},
		{"equal whole value", "sel: {a: hello}\ncondition: sel", false},
		{"star", "sel: {a: 'h*d'}\ncondition: sel", true},
		{"question", "sel: {a: 'hello?world'}\ncondition: sel", true},
		{"question one byte", "sel: {a: 'hello??world'}\ncondition: sel", false},
		{"escaped star literal", `sel: {bs: 'a\*b'}` + "\ncondition: sel", true},
		{"escaped star no wildcard", `sel: {a: 'Hello\*'}` + "\ncondition: sel", false},
		{"backslash literal", `sel: {path: 'C:\Windows\System32\cmd.exe'}` + "\ncondition: sel", true},
		{"contains", "sel: {a|contains: lo wo}\ncondition: sel", true},
		{"contains miss", "sel: {a|contains: xyz}\ncondition: sel", false},
		{"startswith", "sel: {a|startswith: HELLO}\ncondition: sel", true},
		{"endswith", `sel: {path|endswith: '\cmd.exe'}` + "\ncondition: sel", true},
		{"endswith miss", "sel: {a|endswith: hello}\ncondition: sel", false},
		{"list is or", "sel: {a: [x, 'hello world']}\ncondition: sel", true},
		{"contains all", "sel: {a|contains|all: [hello, world]}\ncondition: sel", true},
		{"contains all miss", "sel: {a|contains|all: [hello, xyz]}\ncondition: sel", false},
		{"map is and", "sel: {a: hello world, other: nope}\ncondition: sel", false},
		{"list of maps is or", "sel:\n  - {a: nope}\n  - {other: hello}\ncondition: sel", true},
		{"re", "sel: {a|re: 'H.l+o'}\ncondition: sel", true},
		{"re case-sensitive", "sel: {a|re: 'h.l+o'}\ncondition: sel", false},
		{"re i", "sel: {a|re|i: 'h.l+o'}\ncondition: sel", true},
		{"re dot stops at newline", "sel: {nl|re: 'a.b'}\ncondition: sel", false},
		{"re s", "sel: {nl|re|s: 'a.b'}\ncondition: sel", true},
		{"re literal prefilter", "sel: {path|re: 'Windows.System32'}\ncondition: sel", true},
		{"re literal prefilter miss", "sel: {path|re: 'Windows.system32'}\ncondition: sel", false},
		{"re alternation", "sel: {a|re: 'zzz|World'}\ncondition: sel", true},
		{"re m", "sel: {message|re|m: '^kernel'}\ncondition: sel", true},
		{"cidr v4", "sel: {ip|cidr: 10.0.0.0/8}\ncondition: sel", true},
		{"cidr v4 miss", "sel: {ip|cidr: 192.168.0.0/16}\ncondition: sel", false},
		{"cidr v6", "sel: {ip6|cidr: '2001:db8::/32'}\ncondition: sel", true},
		{"cidr not an ip", "sel: {a|cidr: 10.0.0.0/8}\ncondition: sel", false},
		{"exists true", "sel: {a|exists: true}\ncondition: sel", true},
		{"exists false", "sel: {missing|exists: false}\ncondition: sel", true},
		{"exists on null", "sel: {nul|exists: true}\ncondition: sel", true},
		{"null missing", "sel: {missing: null}\ncondition: sel", true},
		{"null json null", "sel: {nul: null}\ncondition: sel", true},
		{"null present", "sel: {a: null}\ncondition: sel", false},
		{"null in list", "sel: {missing: [null, x]}\ncondition: sel", true},
		{"empty string not missing", "sel: {missing: ''}\ncondition: sel", false},
		{"int", "sel: {n: 404}\ncondition: sel", true},
		{"int as string", "sel: {n: '404'}\ncondition: sel", true},
		{"bool", "sel: {b: 'false'}\ncondition: sel", true},
		{"bool yaml", "sel: {b: false}\ncondition: sel", true},
		{"lt", "sel: {n|lt: 500}\ncondition: sel", true},
		{"lte", "sel: {n|lte: 404}\ncondition: sel", true},
		{"gt", "sel: {f|gt: 2}\ncondition: sel", true},
		{"gte miss", "sel: {n|gte: 405}\ncondition: sel", false},
		{"array fan-out", "sel: {arr: TWO}\ncondition: sel", true},
		{"json descent", "sel: {j.x.y.z: deep}\ncondition: sel", true},
		{"json descent other", "sel: {j.x.y.z|contains: THE}\ncondition: sel", true},
		{"json bool", "sel: {j.t: 'true'}\ncondition: sel", true},
		{"json number", "sel: {j.n: 3}\ncondition: sel", true},
		{"json object text", `sel: {j|contains: '"z":"deep"'}` + "\ncondition: sel", true},
		{"base64", "sel: {b64: hello world}\ncondition: sel", false},
		{"base64 mod", "sel: {b64|base64: hello world}\ncondition: sel", true},
		{"base64offset contains", "sel: {cmd|base64offset|contains: 'IEX'}\ncondition: sel", false},
		{"utf16le base64offset", "sel: {cmd|wide|base64offset|contains: 'IEX'}\ncondition: sel", true},
		{"utf16le base64", "sel: {utf|utf16le|base64: 'whoami'}\ncondition: sel", true},
		{"windash slash", "sel: {dash|windash|contains: ' -c '}\ncondition: sel", true},
		{"windash emdash", "sel: {emdash|windash|contains: ' -c '}\ncondition: sel", true},
		{"windash in word kept", "sel: {dash|windash|contains: 'who-ami'}\ncondition: sel", false},
		{"cased", "sel: {cs|cased: mixed}\ncondition: sel", false},
		{"cased exact", "sel: {cs|cased: MiXeD}\ncondition: sel", true},
		{"neq", "sel: {a|neq: x}\ncondition: sel", true},
		{"fieldref equal", "sel: {ref1|fieldref: ref2}\ncondition: sel", true},
		{"fieldref miss", "sel: {ref1|fieldref: ref3}\ncondition: sel", false},
		{"fieldref contains", "sel: {ref3|fieldref|contains: other}\ncondition: sel", false},
		{"fieldref startswith", "sel: {a|fieldref|startswith: other}\ncondition: sel", true},
		{"fieldref endswith", "sel: {ref3|fieldref|endswith: ref2}\ncondition: sel", false},
		{"fieldref contains hit", "sel: {a|fieldref|contains: other}\ncondition: sel", true},
		{"fieldref missing ref", "sel: {a|fieldref: missing}\ncondition: sel", false},
		{"missing field fails", "sel: {missing: x}\ncondition: sel", false},
		{"missing field under not", "sel: {missing: x}\ncondition: not sel", true},
		{"long list contains", "sel: {a|contains: [zz, yy, xx, 'O WO', ww]}\ncondition: sel", true},
		{"long list contains miss", "sel: {a|contains: [zz, yy, xx, 'O  WO', ww]}\ncondition: sel", false},
		{"long list equal", "sel: {a: [zz, yy, xx, 'HELLO world', ww]}\ncondition: sel", true},
		{"long list startswith miss", "sel: {a|startswith: [zz, yy, xx, 'world', ww]}\ncondition: sel", false},
		{"long list mixed", "sel: {a: [zz, yy, xx, 'h*o w?rld', ww]}\ncondition: sel", true},
		{"two long lists", "s1: {a|contains: [zz, yy, xx, ww]}\ns2: {a|contains: [qq, rr, tt, 'lo w']}\ncondition: s1 or s2", true},
		{"two long lists and", "s1: {a|contains: [zz, yy, xx, ww]}\ns2: {a|contains: [qq, rr, tt, 'lo w']}\ncondition: s1 and s2", false},
		{"long keyword list", "keywords: [aaa, bbb, ccc, 'SYSCALL 42', ddd]\ncondition: keywords", true},
		{"keywords", "keywords: ['out of bounds', zzz]\ncondition: keywords", true},
		{"keyword wildcard", "keywords: ['syscall * out of bounds']\ncondition: keywords", true},
		{"keyword miss", "keywords: [zzz]\ncondition: keywords", false},
		{"keywords all", "kw:\n  '|all': [syscall, bounds]\ncondition: kw", true},
		{"keywords all miss", "kw:\n  '|all': [syscall, zzz]\ncondition: kw", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ruleMatches(t, tt.det, ev); got != tt.want {
				t.Errorf("%s: got %v, want %v", tt.det, got, tt.want)
			}
		})
	}
}

func TestConditions(t *testing.T) {
	ev := map[string]event.Value{"a": s("1"), "b": s("2")}
	base := "sel_a: {a: 1}\nsel_b: {b: 2}\nsel_c: {a: 9}\n_hidden: {a: 9}\n"
	tests := []struct {
		cond string
		want bool
	}{
		{"sel_a", true},
		{"sel_c", false},
		{"sel_a and sel_b", true},
		{"sel_a and sel_c", false},
		{"sel_a or sel_c", true},
		{"not sel_c", true},
		{"not sel_a", false},
		{"sel_c or sel_a and sel_b", true}, // and binds tighter than or
		{"(sel_c or sel_a) and sel_b", true},
		{"not (sel_a and sel_c)", true},
		{"not not sel_a", true},
		{"1 of sel_*", true},
		{"any of sel_*", true},
		{"all of sel_*", false},
		{"all of sel_a*", true},
		{"1 of them", true},
		{"all of them", false},
		{"all of sel_a* and not 1 of sel_c*", true},
		{"sel_a and not _hidden", true},
		{"'[sel_c, sel_a]'", true}, // a list of conditions is ORed
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			c := "condition: " + tt.cond
			if strings.HasPrefix(tt.cond, "'[") {
				c = "condition: " + strings.Trim(tt.cond, "'")
			}
			if got := ruleMatches(t, base+c, ev); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestThemLeavesOutUnderscore(t *testing.T) {
	ev := map[string]event.Value{"a": s("1")}
	if !ruleMatches(t, "sel: {a: 1}\n_f: {a: 2}\ncondition: all of them", ev) {
		t.Error("all of them includes _f")
	}
}

func TestConditionErrors(t *testing.T) {
	names := []string{"sel", "filter_a", "filter_b"}
	for _, c := range []string{
		"", "sel and", "sel or or filter_a", "(sel", "sel)", "nope", "2 of filter_*",
		"1 of nomatch*", "sel | count() > 5", "filter_*", "not", "1 of", "sel sel", "sel & filter_a",
	} {
		if _, err := parseCondition(c, names); err == nil {
			t.Errorf("%q: no error", c)
		}
	}
}

func TestRuleProblems(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"expand", "detection:\n  sel:\n    a|expand: '%x%'\n  condition: sel\n", "test.yml:7: unsupported feature modifier expand"},
		{"timeframe", "detection:\n  sel: {a: 1}\n  timeframe: 5m\n  condition: sel\n", "test.yml:7: unsupported feature timeframe"},
		{"aggregation", "detection:\n  sel: {a: 1}\n  condition: sel | count() > 5\n", "unsupported feature aggregation"},
		{"logsource", "", "unsupported feature logsource {product: windows}"},
		{"bad regexp", "detection:\n  sel: {a|re: '('}\n  condition: sel\n", "test.yml:6: a|re: regular expression"},
		{"unknown id", "detection:\n  sel: {a: 1}\n  condition: other\n", "test.yml:7: condition: unknown search identifier \"other\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "title: t\nid: x\nauthor: me\nlogsource: {product: linux}\n" + tt.src
			if tt.name == "logsource" {
				src = "title: t\nid: x\nlogsource: {product: windows}\ndetection:\n  sel: {a: 1}\n  condition: sel\n"
			}
			_, ps := ParseRules("test.yml", []byte(src))
			if len(ps) != 1 || !strings.Contains(ps[0].String(), tt.want) {
				t.Errorf("got %v, want %q", ps, tt.want)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pat, v string
		want   bool
	}{
		{"abc", "ABC", true},
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"*b*d*", "abcd", true},
		{"a*b*c", "abc", true},
		{"a*bc", "abcbc", true},
		{"a?c*", "abcd", true},
		{"*?", "", false},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{`a\\*`, `a\bcd`, true},
		{`a\\\*`, `a\*`, true},
		{`a\b`, `a\b`, true},
		{"x*y*x", "xyx", true},
		{"x*y*x", "xy", false},
	}
	for _, tt := range tests {
		if got := compileGlob(tt.pat, false).match(tt.v); got != tt.want {
			t.Errorf("%q ~ %q: got %v, want %v", tt.pat, tt.v, got, tt.want)
		}
	}
}

func TestDoublestar(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"rules/**/*.yml", "rules/a.yml", true},
		{"rules/**/*.yml", "rules/x/y/a.yml", true},
		{"rules/*.yml", "rules/x/a.yml", false},
		{"rules/**", "rules/x/a.yml", true},
		{"/abs/**/aws_*.yml", "/abs/c/aws_x.yml", true},
	}
	for _, tt := range tests {
		if got := matchDoublestar(tt.pat, tt.name); got != tt.want {
			t.Errorf("%s ~ %s: got %v", tt.pat, tt.name, got)
		}
	}
}
