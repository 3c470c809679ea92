package cond

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
)

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// testEvent is a small syslog-like event with one field of every kind.
func testEvent() *event.Event {
	e := &event.Event{}
	e.Set("@timestamp", event.Time(testTime))
	e.Set("event.dataset", event.String("aws.cloudtrail"))
	e.Set("event.outcome", event.Bytes([]byte("failure")))
	e.Set("event.category", event.Raw([]byte(`["authentication","iam"]`)))
	e.Set("event.type", event.Strings([]string{"start", "user"}))
	e.Set("log.syslog.severity.code", event.Int(7))
	e.Set("event.risk_score", event.Float(2.5))
	e.Set("http.response.status_code", event.Raw([]byte(`404`)))
	e.Set("http.response.bytes", event.Raw([]byte(`12.5`)))
	e.Set("network.ports", event.Raw([]byte(`[22, 443.5]`)))
	e.Set("tls.established", event.Bool(true))
	e.Set("user.name", event.String("alice"))
	e.Set("user.id", event.String("u-1"))
	e.Set("user.group.name", event.String("admins"))
	e.Set("labels.my-tag", event.String("blue"))
	e.Set("error.message", event.Value{})
	return e
}

func TestConditions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want bool
	}{
		{"dotted path", `log.syslog.severity.code >= 7`, true},
		{"dotted path false", `log.syslog.severity.code > 7`, false},
		{"dotted path string", `event.dataset == "aws.cloudtrail"`, true},
		{"bytes value is a string", `event.outcome == "failure"`, true},
		{"field() for @timestamp", `field("@timestamp") != nil`, true},
		{"field() time comparison", `field("@timestamp") > date("2024-01-01T00:00:00Z")`, true},
		{"field() time equality", `field("@timestamp") == date("2024-05-06T07:08:09Z")`, true},
		{"field() with a dash", `field("labels.my-tag") == "blue"`, true},
		{"field() as the root of a member chain", `field("user").name == "alice"`, true},
		{"missing field is nil", `no.such.field == nil`, true},
		{"missing root is nil", `nosuchfield == nil`, true},
		{"missing field() is nil", `field("no-such") == nil`, true},
		{"missing field is not a string", `no.such.field == "x"`, false},
		{"null leaf is nil", `error.message == nil`, true},
		{"startsWith", `event.dataset startsWith "aws."`, true},
		{"startsWith false", `event.dataset startsWith "gcp."`, false},
		{"endsWith", `event.dataset endsWith ".cloudtrail"`, true},
		{"contains", `event.dataset contains "cloud"`, true},
		{"matches", `event.dataset matches "^aws\\.[a-z]+$"`, true},
		{"in over a raw array", `"iam" in event.category`, true},
		{"in over a raw array false", `"network" in event.category`, false},
		{"not in", `"network" not in event.category`, true},
		{"in over a strings array", `"user" in event.type`, true},
		{"index into a raw array", `event.category[0] == "authentication"`, true},
		{"len of an array", `len(event.type) == 2`, true},
		{"in a literal list", `event.outcome in ["failure", "unknown"]`, true},
		{"int", `log.syslog.severity.code == 7 && log.syslog.severity.code + 1 == 8`, true},
		{"int against a float literal", `log.syslog.severity.code == 7.0`, true},
		{"float", `event.risk_score > 2 && event.risk_score < 3`, true},
		{"raw whole number is an int", `http.response.status_code == 404 && http.response.status_code % 100 == 4`, true},
		{"raw fraction is a float", `http.response.bytes == 12.5`, true},
		{"numbers in a raw array", `22 in network.ports && 443.5 in network.ports`, true},
		{"bool", `tls.established`, true},
		{"bool negated", `!tls.established`, false},
		{"object with only leaves below", `user != nil && len(user) == 3`, true},
		{"nested object", `len(user.group) == 1 && user.group.name == "admins"`, true},
		{"object index", `user["name"] == "alice"`, true},
		{"missing field in a condition is false", `no.such.flag`, false},
		{"and/or", `event.outcome == "failure" && event.dataset == "aws.cloudtrail" || false`, true},
		{"nil-safe member", `no.such?.thing == nil`, true},
		{"ternary", `(log.syslog.severity.code >= 7 ? "debug" : "other") == "debug"`, true},
		{"let", `let sev = log.syslog.severity.code; sev >= 7 && sev < 8`, true},
		{"member of a let variable is not a field", `let u = user; u.name == "alice" && u.group.name == "admins"`, true},
		{"let object literal", `let m = {"k": 1}; m.k == 1`, true},
		{"predicate", `any(event.type, # == "user")`, true},
		{"predicate over a missing field", `any(no.such.list ?? [], # == "user")`, false},
		// Ordering comparisons with a missing field or of mismatched types are false,
		// not errors: a condition on a field some events lack must not fail them.
		{"missing field > number", `no.such.field > 3`, false},
		{"missing field <= number", `no.such.field <= 3`, false},
		{"number < missing field", `3 < no.such.field`, false},
		{"not of a failed comparison", `!(no.such.field >= 3)`, true},
		{"string > number", `event.dataset > 3`, false},
		{"string ordering", `event.dataset > "aws.a" && event.dataset < "aws.d"`, true},
		{"int and float ordering", `log.syslog.severity.code < event.risk_score * 3`, true},
		{"time ordering", `field("@timestamp") < date("2025-01-01T00:00:00Z")`, true},
	}
	ev := NewEvaluator()
	e := testEvent()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileBool(tt.src)
			if err != nil {
				t.Fatalf("CompileBool(%q): %v", tt.src, err)
			}
			got, err := ev.True(p, e)
			if err != nil {
				t.Fatalf("True(%q): %v", tt.src, err)
			}
			if got != tt.want {
				t.Errorf("True(%q) = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

// The evaluator reuses its environment: a field of one program or event must not
// leak into the next.
func TestEvaluatorReuse(t *testing.T) {
	ev := NewEvaluator()
	a, b := &event.Event{}, &event.Event{}
	a.Set("x", event.Int(1))
	pX := mustCompileBool(t, `x == 1`)
	pNil := mustCompileBool(t, `x == nil`)
	for i := 0; i < 3; i++ {
		if ok, err := ev.True(pX, a); !ok || err != nil {
			t.Fatalf("x == 1 on a: %v %v", ok, err)
		}
		if ok, err := ev.True(pNil, b); !ok || err != nil {
			t.Fatalf("x == nil on b: %v %v", ok, err)
		}
	}
}

func TestEvalValues(t *testing.T) {
	tests := []struct {
		src  string
		want any
	}{
		{`log.syslog.severity.code`, 7},
		{`http.response.status_code`, 404},
		{`http.response.bytes`, 12.5},
		{`event.risk_score * 2`, 5.0},
		{`event.outcome`, "failure"},
		{`field("@timestamp")`, testTime},
		{`event.category`, []any{"authentication", "iam"}},
		{`event.type`, []any{"start", "user"}},
		{`network.ports`, []any{22, 443.5}},
		{`user`, map[string]any{"name": "alice", "id": "u-1", "group": map[string]any{"name": "admins"}}},
		{`no.such.field`, nil},
		{`upper(user.name) + "@" + lower("EXAMPLE.COM")`, "ALICE@example.com"},
		{`no.such.field ?? "default"`, "default"},
		{`tls.established`, true},
	}
	ev := NewEvaluator()
	e := testEvent()
	for _, tt := range tests {
		p, err := Compile(tt.src)
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.src, err)
			continue
		}
		got, err := ev.Eval(p, e)
		if err != nil {
			t.Errorf("Eval(%q): %v", tt.src, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Eval(%q) = %#v, want %#v", tt.src, got, tt.want)
		}
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		src  string
		want []string
	}{
		{`a.b.c == 1`, []string{"a.b.c"}},
		{`a == nil && a.b == 1`, []string{"a", "a.b"}},
		{`a.b == 1 && a == nil`, []string{"a", "a.b"}},
		{`a.b == 1 || a.b == 2`, []string{"a.b"}},
		{`field("@timestamp") != nil && x`, []string{"@timestamp", "x"}},
		{`field("user").name == "alice"`, []string{"user.name"}},
		{`len(s) > 1 && "x" in list`, []string{"list", "s"}},
		{`1 + 2 == 3`, nil},
		{`let u = user; u.name == "alice"`, []string{"user"}},
	}
	for _, tt := range tests {
		p, err := CompileBool(tt.src)
		if err != nil {
			t.Errorf("CompileBool(%q): %v", tt.src, err)
			continue
		}
		if got := p.Fields(); !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("Fields(%q) = %q, want %q", tt.src, got, tt.want)
		}
		if p.String() != tt.src {
			t.Errorf("String() = %q, want %q", p.String(), tt.src)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		boolean bool
		want    string // substring of the error
	}{
		{"empty", ``, true, "empty expression"},
		{"blank", "  \t\n", false, "empty expression"},
		{"syntax", `event.dataset ==`, true, `expression "event.dataset ==": unexpected token EOF`},
		{"unclosed string", `event.dataset == "syslog`, true, "literal not terminated"},
		{"unbalanced parenthesis", `(a == 1`, true, "unexpected token EOF"},
		{"field() with a variable", `field(x) == 1`, true, `field() takes one constant string`},
		{"field() with an expression", `field("a" + "b") == 1`, true, `field() takes one constant string`},
		{"field() with no argument", `field() == nil`, true, `field() takes one constant string`},
		{"field() with two arguments", `field("a", "b") == nil`, true, `field() takes one constant string`},
		{"field() with a number", `field(1) == nil`, false, `field() takes one constant string`},
		{"not a boolean", `1 + 2`, true, "expected bool"},
		{"a string is not a boolean", `"yes"`, true, "expected bool"},
		{"mismatched types", `"a" + 1 == "a1"`, true, "mismatched types"},
		{"unknown function", `nosuchfunc(1, 2) && true`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			compile := Compile
			if tt.boolean {
				compile = CompileBool
			}
			p, err := compile(tt.src)
			if tt.want == "" {
				// Allowed to compile; it must then fail at run time, not panic.
				if err == nil {
					if _, err := NewEvaluator().Eval(p, testEvent()); err == nil {
						t.Errorf("%q compiled and ran without an error", tt.src)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("%q compiled", tt.src)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	ev := NewEvaluator()
	e := testEvent()
	for _, src := range []string{
		`event.category[5] == "x"`,  // index out of range
		`user.name.foo.bar() == ""`, // method on a string
	} {
		p, err := CompileBool(src)
		if err != nil {
			continue // rejected at compile time is fine too
		}
		ok, err := ev.True(p, e)
		if err == nil {
			t.Errorf("True(%q) = %v without an error", src, ok)
			continue
		}
		if ok {
			t.Errorf("True(%q) = true with an error", src)
		}
		if !strings.Contains(err.Error(), strconv.Quote(src)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q should name the expression on one line", err)
		}
	}
}

func TestLookup(t *testing.T) {
	e := testEvent()
	tests := []struct {
		path string
		want any
	}{
		{"event.dataset", "aws.cloudtrail"},
		{"event.outcome", "failure"},
		{"log.syslog.severity.code", 7},
		{"log.syslog", map[string]any{"severity": map[string]any{"code": 7}}},
		{"log", map[string]any{"syslog": map[string]any{"severity": map[string]any{"code": 7}}}},
		{"user.group", map[string]any{"name": "admins"}},
		{"use", nil}, // a prefix of a key is not a parent
		{"user.nam", nil},
		{"nope", nil},
		{"", nil},
		{"error.message", nil},
		{"labels.my-tag", "blue"},
	}
	for _, tt := range tests {
		if got := Lookup(e, tt.path); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Lookup(%q) = %#v, want %#v", tt.path, got, tt.want)
		}
	}
}

func TestNative(t *testing.T) {
	tests := []struct {
		name string
		give event.Value
		want any
	}{
		{"null", event.Value{}, nil},
		{"string", event.String("s"), "s"},
		{"bytes", event.Bytes([]byte("b")), "b"},
		{"int", event.Int(-3), -3},
		{"float", event.Float(1.5), 1.5},
		{"whole float stays a float", event.Float(2), 2.0},
		{"bool true", event.Bool(true), true},
		{"bool false", event.Bool(false), false},
		{"time", event.Time(testTime), testTime},
		{"strings", event.Strings([]string{"a", "b"}), []any{"a", "b"}},
		{"empty strings", event.Strings(nil), []any{}},
		{"raw number", event.Raw([]byte(`3`)), 3},
		{"raw negative number", event.Raw([]byte(`-3`)), -3},
		{"raw fraction", event.Raw([]byte(`0.25`)), 0.25},
		{"raw huge number stays a float", event.Raw([]byte(`1e300`)), 1e300},
		{"raw beyond 2^53 stays a float", event.Raw([]byte(`18014398509481984`)), 18014398509481984.0},
		{"raw object", event.Raw([]byte(`{"a":{"b":[1,"x",true,null]}}`)), map[string]any{"a": map[string]any{"b": []any{1, "x", true, nil}}}},
		{"raw string", event.Raw([]byte(`"s"`)), "s"},
		{"raw null", event.Raw([]byte(`null`)), nil},
		{"invalid raw is its text", event.Raw([]byte(`{nope`)), "{nope"},
	}
	for _, tt := range tests {
		if got := Native(tt.give); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Native = %#v (%T), want %#v (%T)", tt.name, got, got, tt.want, tt.want)
		}
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		name     string
		give     any
		wantKind event.Kind
		wantJSON string
	}{
		{"nil", nil, event.KindNull, `null`},
		{"string", "s", event.KindString, `"s"`},
		{"int", 3, event.KindInt, `3`},
		{"int64", int64(-4), event.KindInt, `-4`},
		{"float", 1.5, event.KindFloat, `1.5`},
		{"bool", true, event.KindBool, `true`},
		{"time", testTime, event.KindTime, `"2024-05-06T07:08:09Z"`},
		{"list", []any{"a", 1, true}, event.KindRaw, `["a",1,true]`},
		{"int list", []int{1, 2, 3}, event.KindRaw, `[1,2,3]`},
		{"map", map[string]any{"k": "v"}, event.KindRaw, `{"k":"v"}`},
		{"float32 through JSON", float32(0.5), event.KindRaw, `0.5`},
	}
	for _, tt := range tests {
		v, err := Value(tt.give)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if v.Kind() != tt.wantKind || string(v.AppendJSON(nil)) != tt.wantJSON {
			t.Errorf("%s: Value(%#v) = kind %d %s, want kind %d %s", tt.name, tt.give, v.Kind(), v.AppendJSON(nil), tt.wantKind, tt.wantJSON)
		}
	}
	for _, bad := range []any{func() {}, make(chan int), []any{math.NaN()}, map[string]any{"x": math.Inf(1)}} {
		if v, err := Value(bad); err == nil {
			t.Errorf("Value(%T) = %s, want an error", bad, v.AppendJSON(nil))
		}
	}
}

// Value of an expression's result round-trips through Native for the kinds a
// condition can produce.
func TestValueRoundTrip(t *testing.T) {
	ev := NewEvaluator()
	e := testEvent()
	for _, src := range []string{`event.category`, `user`, `log.syslog.severity.code`, `event.risk_score`, `field("@timestamp")`, `[1, "two", 3.5]`} {
		p, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		out, err := ev.Eval(p, e)
		if err != nil {
			t.Fatal(err)
		}
		v, err := Value(out)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if back := Native(v); !reflect.DeepEqual(back, out) {
			t.Errorf("%s: %#v -> %s -> %#v", src, out, v.AppendJSON(nil), back)
		}
	}
}

func mustCompileBool(t testing.TB, src string) *Program {
	t.Helper()
	p, err := CompileBool(src)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// benchEvent is a ~20-field event the way a syslog parser leaves it.
func benchEvent() *event.Event {
	e := &event.Event{}
	e.Add("@timestamp", event.Time(testTime))
	e.Add("event.id", event.String("Vq3uGQ1xSzX7s0w3PbLx"))
	e.Add("event.dataset", event.String("syslog"))
	e.Add("event.kind", event.String("event"))
	e.Add("event.category", event.Strings([]string{"authentication", "iam"}))
	e.Add("event.outcome", event.String("failure"))
	e.Add("event.original", event.Bytes([]byte("<191>May  6 07:08:09 host sshd[4242]: Failed password for alice from 203.0.113.17 port 51234 ssh2")))
	e.Add("log.syslog.priority", event.Int(191))
	e.Add("log.syslog.facility.code", event.Int(23))
	e.Add("log.syslog.severity.code", event.Int(7))
	e.Add("log.syslog.hostname", event.String("host"))
	e.Add("log.syslog.appname", event.String("sshd"))
	e.Add("process.pid", event.Int(4242))
	e.Add("message", event.Bytes([]byte("Failed password for alice from 203.0.113.17 port 51234 ssh2")))
	e.Add("source.ip", event.String("203.0.113.17"))
	e.Add("source.port", event.Int(51234))
	e.Add("user.name", event.String("alice"))
	e.Add("host.hostname", event.String("host"))
	e.Add("agent.type", event.String("vigil"))
	e.Add("ecs.version", event.String("8.11.0"))
	return e
}

func BenchmarkEvalCondition(b *testing.B) {
	e := benchEvent()
	for _, bm := range []struct{ name, src string }{
		{"eq_and_ge", `event.dataset == "syslog" && log.syslog.severity.code >= 7`},
		{"startsWith", `event.dataset startsWith "aws."`},
		{"in_array", `event.outcome == "failure" && "authentication" in event.category`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			p := mustCompileBool(b, bm.src)
			ev := NewEvaluator()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ev.True(p, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
