package processors_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/processors"
)

const (
	hashKey  = "0123456789abcdef-test-key"
	otherKey = "fedcba9876543210-test-key"
)

// types looks a built-in processor type up by name, the way internal/components does.
func types(name string) (process.Type, bool) {
	for _, t := range processors.Types() {
		if t.Name == name {
			return t, true
		}
	}
	return process.Type{}, false
}

func mustType(t testing.TB, name string) process.Type {
	t.Helper()
	typ, ok := types(name)
	if !ok {
		t.Fatalf("no processor type %q", name)
	}
	return typ
}

// newConfig returns the type's default config, changed by set.
func newConfig[C config.Component](t testing.TB, name string, set func(C)) C {
	t.Helper()
	c, ok := mustType(t, name).NewConfig().(C)
	if !ok {
		t.Fatalf("%s: NewConfig is not a %T", name, *new(C))
	}
	if set != nil {
		set(c)
	}
	return c
}

// build makes a processor the way the chain does: defaults, the test's settings,
// Validate, New.
func build[C config.Component](t testing.TB, name string, set func(C)) process.Processor {
	t.Helper()
	c := newConfig(t, name, set)
	if err := c.Validate(); err != nil {
		t.Fatalf("%s: Validate: %v", name, err)
	}
	p, err := mustType(t, name).New(c, process.Deps{})
	if err != nil {
		t.Fatalf("%s: New: %v", name, err)
	}
	return p
}

// ev builds an event from key/value pairs, in order.
func ev(kvs ...any) *event.Event {
	e := &event.Event{}
	for i := 0; i < len(kvs); i += 2 {
		e.Add(kvs[i].(string), kvs[i+1].(event.Value))
	}
	return e
}

func str(s string) event.Value { return event.String(s) }
func raw(s string) event.Value { return event.Raw([]byte(s)) }

// dump returns every leaf of e as its JSON text; a key set twice shows its values
// joined with " | ".
func dump(e *event.Event) map[string]string {
	m := map[string]string{}
	for _, f := range e.Fields {
		j := string(f.Value.AppendJSON(nil))
		if prev, ok := m[f.Key]; ok {
			j = prev + " | " + j
		}
		m[f.Key] = j
	}
	return m
}

func process1(t *testing.T, p process.Processor, e *event.Event) process.Verdict {
	t.Helper()
	v, err := p.Process(process.NewItem(e, nil, "test"))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return v
}

func hmacHex(key, s string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}

func TestTypes(t *testing.T) {
	var names []string
	for _, typ := range processors.Types() {
		names = append(names, typ.Name)
		if typ.NewConfig == nil || typ.New == nil {
			t.Errorf("%s: incomplete type", typ.Name)
		}
		// New rejects a config of another type instead of panicking.
		if _, err := typ.New(wrongConfig{}, process.Deps{}); err == nil {
			t.Errorf("%s: New took a config of another type", typ.Name)
		}
	}
	want := []string{"drop", "set", "rename", "remove", "redact", "route", "validate", "threshold", "sigma"}
	if !slices.Equal(names, want) {
		t.Errorf("types %q, want %q", names, want)
	}
}

type wrongConfig struct{}

func (wrongConfig) Validate() error { return nil }

// procCase is one run of one processor on one event: want is every field after it.
type procCase struct {
	name  string
	proc  func(t *testing.T) process.Processor
	in    *event.Event
	want  map[string]string
	wantV process.Verdict
}

func runCases(t *testing.T, tests []procCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.proc(t)
			if v := process1(t, p, tt.in); v != tt.wantV {
				t.Errorf("verdict %d, want %d", v, tt.wantV)
			}
			if got := dump(tt.in); !maps.Equal(got, tt.want) {
				t.Errorf("fields:\n got  %v\n want %v", got, tt.want)
			}
		})
	}
}

func setP(f func(*processors.SetConfig)) func(*testing.T) process.Processor {
	return func(t *testing.T) process.Processor { return build(t, "set", f) }
}

func TestSet(t *testing.T) {
	runCases(t, []procCase{
		{name: "string value", proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "labels.env", "prod" }),
			in: ev("message", str("m")), want: map[string]string{"message": `"m"`, "labels.env": `"prod"`}},
		{name: "replaces a leaf", proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "labels.env", "prod" }),
			in: ev("labels.env", str("dev")), want: map[string]string{"labels.env": `"prod"`}},
		{name: "YAML unsigned integer", proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "event.severity", uint64(3) }),
			in: ev(), want: map[string]string{"event.severity": `3`}},
		{name: "YAML signed integer", proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "event.severity", int64(-3) }),
			in: ev(), want: map[string]string{"event.severity": `-3`}},
		{name: "float", proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "event.risk_score", 2.5 }),
			in: ev(), want: map[string]string{"event.risk_score": `2.5`}},
		{name: "bool", proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "labels.seen", true }),
			in: ev(), want: map[string]string{"labels.seen": `true`}},
		{name: "list", proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "tags", []any{"a", uint64(1)} }),
			in: ev(), want: map[string]string{"tags": `["a",1]`}},
		{name: "setting a parent replaces the leaves below it",
			proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "user", "alice" }),
			in:   ev("user.name", str("bob"), "user.id", str("1"), "user_agent.original", str("ua")),
			want: map[string]string{"user": `"alice"`, "user_agent.original": `"ua"`}},
		{name: "setting below a leaf replaces the leaf",
			proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "user.name.first", "alice" }),
			in:   ev("user.name", str("alice smith"), "user.id", str("1")),
			want: map[string]string{"user.name.first": `"alice"`, "user.id": `"1"`}},
		{name: "value_from copies", proc: setP(func(c *processors.SetConfig) { c.Field, c.ValueFrom = "related.ip", "source.ip" }),
			in:   ev("source.ip", str("10.0.0.1")),
			want: map[string]string{"source.ip": `"10.0.0.1"`, "related.ip": `"10.0.0.1"`}},
		{name: "value_from keeps the kind", proc: setP(func(c *processors.SetConfig) { c.Field, c.ValueFrom = "x.ports", "network.ports" }),
			in:   ev("network.ports", raw(`[22,443]`)),
			want: map[string]string{"network.ports": `[22,443]`, "x.ports": `[22,443]`}},
		{name: "value_from missing sets nothing", proc: setP(func(c *processors.SetConfig) { c.Field, c.ValueFrom = "related.ip", "source.ip" }),
			in:   ev("related.ip", str("keep")),
			want: map[string]string{"related.ip": `"keep"`}},
		{name: "value_from an object sets nothing", proc: setP(func(c *processors.SetConfig) { c.Field, c.ValueFrom = "x", "user" }),
			in:   ev("user.name", str("a")),
			want: map[string]string{"user.name": `"a"`}},
		{name: "expr", proc: setP(func(c *processors.SetConfig) { c.Field, c.Expr = "user.name", `lower(user.name) + "@" + host.domain` }),
			in:   ev("user.name", str("ALICE"), "host.domain", str("example.com")),
			want: map[string]string{"user.name": `"alice@example.com"`, "host.domain": `"example.com"`}},
		{name: "expr number", proc: setP(func(c *processors.SetConfig) { c.Field, c.Expr = "event.severity", `log.syslog.severity.code * 10` }),
			in:   ev("log.syslog.severity.code", event.Int(4)),
			want: map[string]string{"log.syslog.severity.code": `4`, "event.severity": `40`}},
		{name: "expr list", proc: setP(func(c *processors.SetConfig) { c.Field, c.Expr = "related.ip", `[source.ip, destination.ip]` }),
			in:   ev("source.ip", str("a"), "destination.ip", str("b")),
			want: map[string]string{"source.ip": `"a"`, "destination.ip": `"b"`, "related.ip": `["a","b"]`}},
		{name: "expr nil leaves a missing field unset", proc: setP(func(c *processors.SetConfig) { c.Field, c.Expr = "user.email", `user.mail` }),
			in:   ev("user.name", str("a")),
			want: map[string]string{"user.name": `"a"`}},
		{name: "expr nil leaves an existing field as it is", proc: setP(func(c *processors.SetConfig) { c.Field, c.Expr = "user.email", `user.mail` }),
			in:   ev("user.email", str("a@b")),
			want: map[string]string{"user.email": `"a@b"`}},
		{name: "expr replacing a leaf that was a parent", proc: setP(func(c *processors.SetConfig) { c.Field, c.Expr = "user", `user.name` }),
			in:   ev("user.name", str("alice"), "user.id", str("1")),
			want: map[string]string{"user": `"alice"`}},
		{name: "event.dataset can be set", proc: setP(func(c *processors.SetConfig) { c.Field, c.Value = "event.dataset", "other" }),
			in:   ev("event.dataset", str("syslog")),
			want: map[string]string{"event.dataset": `"other"`}},
	})
}

func TestSetExprError(t *testing.T) {
	p := build(t, "set", func(c *processors.SetConfig) { c.Field, c.Expr = "x", `user.name.foo()` })
	e := ev("user.name", str("a"))
	if _, err := p.Process(process.NewItem(e, nil, "test")); err == nil {
		t.Fatal("a failing expression set the field without an error")
	}
	if _, ok := e.Get("x"); ok {
		t.Error("x set")
	}
}

func renameP(fields map[string]string) func(*testing.T) process.Processor {
	return func(t *testing.T) process.Processor {
		return build(t, "rename", func(c *processors.RenameConfig) { c.Fields = fields })
	}
}

func TestRename(t *testing.T) {
	runCases(t, []procCase{
		{name: "leaf", proc: renameP(map[string]string{"src_ip": "source.ip"}),
			in:   ev("src_ip", str("10.0.0.1"), "message", str("m")),
			want: map[string]string{"source.ip": `"10.0.0.1"`, "message": `"m"`}},
		{name: "subtree", proc: renameP(map[string]string{"srv": "server"}),
			in:   ev("srv.ip", str("10.0.0.1"), "srv.port", event.Int(22), "srv2.x", str("other")),
			want: map[string]string{"server.ip": `"10.0.0.1"`, "server.port": `22`, "srv2.x": `"other"`}},
		{name: "missing source is left alone", proc: renameP(map[string]string{"src_ip": "source.ip"}),
			in:   ev("source.ip", str("keep")),
			want: map[string]string{"source.ip": `"keep"`}},
		{name: "existing destination leaf is replaced", proc: renameP(map[string]string{"src_ip": "source.ip"}),
			in:   ev("source.ip", str("old"), "src_ip", str("new")),
			want: map[string]string{"source.ip": `"new"`}},
		{name: "existing destination subtree is replaced", proc: renameP(map[string]string{"who": "user"}),
			in:   ev("user.name", str("old"), "user.id", str("1"), "who", str("alice")),
			want: map[string]string{"user": `"alice"`}},
		{name: "a leaf on the way to the destination gives way", proc: renameP(map[string]string{"src_ip": "source.ip"}),
			in:   ev("source", str("firewall"), "src_ip", str("10.0.0.1")),
			want: map[string]string{"source.ip": `"10.0.0.1"`}},
		{name: "a leaf two levels up gives way", proc: renameP(map[string]string{"a": "x.y.z"}),
			in:   ev("x", str("leaf"), "a", str("v")),
			want: map[string]string{"x.y.z": `"v"`}},
		{name: "onto its own parent", proc: renameP(map[string]string{"json.payload": "json"}),
			in:   ev("json.payload.user", str("alice"), "json.other", str("dropped")),
			want: map[string]string{"json.user": `"alice"`}},
		{name: "several, in key order", proc: renameP(map[string]string{"a": "b", "c": "d"}),
			in:   ev("a", str("1"), "c", str("2")),
			want: map[string]string{"b": `"1"`, "d": `"2"`}},
		{name: "a prefix that is not a parent", proc: renameP(map[string]string{"user": "who"}),
			in:   ev("user_agent.original", str("ua"), "user", str("alice")),
			want: map[string]string{"user_agent.original": `"ua"`, "who": `"alice"`}},
	})
}

func removeP(fields ...string) func(*testing.T) process.Processor {
	return func(t *testing.T) process.Processor {
		return build(t, "remove", func(c *processors.RemoveConfig) { c.Fields = fields })
	}
}

func TestRemove(t *testing.T) {
	runCases(t, []procCase{
		{name: "leaf", proc: removeP("event.original"),
			in:   ev("event.original", str("raw"), "event.id", str("x")),
			want: map[string]string{"event.id": `"x"`}},
		{name: "subtree", proc: removeP("url"),
			in:   ev("url.query", str("q"), "url.path", str("/p"), "url_x", str("kept"), "message", str("m")),
			want: map[string]string{"url_x": `"kept"`, "message": `"m"`}},
		{name: "several and missing", proc: removeP("a", "no.such", "b.c"),
			in:   ev("a", str("1"), "b.c", str("2"), "b.d", str("3")),
			want: map[string]string{"b.d": `"3"`}},
		{name: "a key set twice", proc: removeP("a"),
			in:   ev("a", str("1"), "a", str("2")),
			want: map[string]string{}},
	})
}

func redactP(f func(*processors.RedactConfig)) func(*testing.T) process.Processor {
	return func(t *testing.T) process.Processor { return build(t, "redact", f) }
}

func hashed(fields ...string) func(*processors.RedactConfig) {
	return func(c *processors.RedactConfig) { c.Fields, c.Key = fields, hashKey }
}

func masked(keepLast int, fields ...string) func(*processors.RedactConfig) {
	return func(c *processors.RedactConfig) { c.Mode, c.Fields, c.KeepLast = "mask", fields, keepLast }
}

func TestRedact(t *testing.T) {
	h := func(s string) string { return `"` + hmacHex(hashKey, s) + `"` }
	runCases(t, []procCase{
		{name: "hash is HMAC-SHA256 hex", proc: redactP(hashed("user.email")),
			in:   ev("user.email", str("alice@example.com"), "user.name", str("alice")),
			want: map[string]string{"user.email": h("alice@example.com"), "user.name": `"alice"`}},
		{name: "hash of bytes", proc: redactP(hashed("user.email")),
			in:   ev("user.email", event.Bytes([]byte("alice@example.com"))),
			want: map[string]string{"user.email": h("alice@example.com")}},
		{name: "hash of a JSON string is the hash of the string", proc: redactP(hashed("user.email")),
			in:   ev("user.email", raw(`"alice@example.com"`)),
			want: map[string]string{"user.email": h("alice@example.com")}},
		{name: "hash of a number is the hash of its JSON", proc: redactP(hashed("user.id")),
			in:   ev("user.id", event.Int(42)),
			want: map[string]string{"user.id": h("42")}},
		{name: "hash of a subtree hashes each leaf", proc: redactP(hashed("user")),
			in:   ev("user.name", str("alice"), "user.email", str("a@b"), "user_agent.original", str("ua")),
			want: map[string]string{"user.name": h("alice"), "user.email": h("a@b"), "user_agent.original": `"ua"`}},
		{name: "hash of a strings list keeps a list", proc: redactP(hashed("related.user")),
			in:   ev("related.user", event.Strings([]string{"alice", "bob"})),
			want: map[string]string{"related.user": `[` + h("alice") + `,` + h("bob") + `]`}},
		{name: "hash of a raw list keeps a list", proc: redactP(hashed("related.user")),
			in:   ev("related.user", raw(`["alice", 7]`)),
			want: map[string]string{"related.user": `[` + h("alice") + `,` + h("7") + `]`}},
		{name: "hash of a raw object hashes its JSON", proc: redactP(hashed("x")),
			in:   ev("x", raw(`{"a":1}`)),
			want: map[string]string{"x": h(`{"a":1}`)}},
		{name: "null stays null", proc: redactP(hashed("a", "b")),
			in:   ev("a", event.Value{}, "b", raw(`null`)),
			want: map[string]string{"a": `null`, "b": `null`}},
		{name: "missing field adds nothing", proc: redactP(hashed("user.email")),
			in:   ev("message", str("m")),
			want: map[string]string{"message": `"m"`}},
		{name: "every occurrence of a key set twice", proc: redactP(hashed("user.email")),
			in:   ev("user.email", str("first@x"), "user.email", str("second@x")),
			want: map[string]string{"user.email": h("first@x") + " | " + h("second@x")}},
		{name: "mask", proc: redactP(masked(0, "user.password")),
			in:   ev("user.password", str("hunter2")),
			want: map[string]string{"user.password": `"*******"`}},
		{name: "mask keep_last", proc: redactP(masked(4, "card.number")),
			in:   ev("card.number", str("4111111111111111")),
			want: map[string]string{"card.number": `"************1111"`}},
		{name: "mask counts characters, not bytes", proc: redactP(func(c *processors.RedactConfig) {
			masked(2, "user.full_name")(c)
			c.MaskChar = "•"
		}),
			in:   ev("user.full_name", str("Zoë Ünal ✓")),
			want: map[string]string{"user.full_name": `"•••••••• ✓"`}},
		{name: "mask keep_last longer than the value", proc: redactP(masked(10, "pin")),
			in:   ev("pin", str("1234")),
			want: map[string]string{"pin": `"1234"`}},
		{name: "mask of an empty string", proc: redactP(masked(0, "pin")),
			in:   ev("pin", str("")),
			want: map[string]string{"pin": `""`}},
		{name: "mask of a list keeps a list", proc: redactP(masked(1, "related.user")),
			in:   ev("related.user", raw(`["alice","bo"]`)),
			want: map[string]string{"related.user": `["****e","*o"]`}},
		{name: "mask of a number", proc: redactP(masked(2, "n")),
			in:   ev("n", event.Int(12345)),
			want: map[string]string{"n": `"***45"`}},
		{name: "remove", proc: redactP(func(c *processors.RedactConfig) { c.Mode, c.Fields = "remove", []string{"user.password", "secret"} }),
			in:   ev("user.password", str("p"), "secret.a", str("1"), "secret.b", str("2"), "user.name", str("alice")),
			want: map[string]string{"user.name": `"alice"`}},
	})
}

func TestRedactHashProperties(t *testing.T) {
	run := func(key, value string) string {
		p := build(t, "redact", func(c *processors.RedactConfig) { c.Fields, c.Key = []string{"f"}, key })
		e := ev("f", str(value))
		process1(t, p, e)
		v, _ := e.Get("f")
		return v.Str()
	}
	a, b := run(hashKey, "alice"), run(hashKey, "alice")
	if a != b {
		t.Errorf("same input and key, different hashes: %s %s", a, b)
	}
	if a != hmacHex(hashKey, "alice") {
		t.Errorf("hash %s, want HMAC-SHA256 %s", a, hmacHex(hashKey, "alice"))
	}
	if c := run(otherKey, "alice"); c == a {
		t.Error("another key gives the same hash")
	}
	if d := run(hashKey, "bob"); d == a {
		t.Error("another value gives the same hash")
	}
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("not 64 lowercase hex digits: %q", a)
	}
	// One instance hashes many events with the same result (its MAC is reused).
	p := build(t, "redact", hashed("f"))
	for i := 0; i < 3; i++ {
		e := ev("f", str("alice"))
		process1(t, p, e)
		if v, _ := e.Get("f"); v.Str() != a {
			t.Fatalf("event %d: %s, want %s", i, v.Str(), a)
		}
	}
}

// A redacted list still encodes as a JSON array in the event's document.
func TestRedactListEncodes(t *testing.T) {
	for _, give := range []event.Value{event.Strings([]string{"alice", "bob"}), raw(`["alice","bob"]`)} {
		p := build(t, "redact", hashed("related.user"))
		e := ev("related.user", give)
		process1(t, p, e)
		v, _ := e.Get("related.user")
		if v.Kind() != event.KindStrings {
			t.Fatalf("kind %d, want strings", v.Kind())
		}
		doc := (&event.Encoder{}).Append(nil, e)
		var got struct {
			Related struct{ User []string } `json:"related"`
		}
		if err := json.Unmarshal(doc, &got); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if len(got.Related.User) != 2 || got.Related.User[1] != hmacHex(hashKey, "bob") {
			t.Errorf("doc %s", doc)
		}
	}
}

func TestRouteAndDrop(t *testing.T) {
	runCases(t, []procCase{
		{name: "route sets event.dataset",
			proc: func(t *testing.T) process.Processor {
				return build(t, "route", func(c *processors.RouteConfig) { c.Dataset = "security.high" })
			},
			in:   ev("event.dataset", str("syslog"), "message", str("m")),
			want: map[string]string{"event.dataset": `"security.high"`, "message": `"m"`}},
		{name: "route on an event without a dataset",
			proc: func(t *testing.T) process.Processor {
				return build(t, "route", func(c *processors.RouteConfig) { c.Dataset = "x" })
			},
			in:   ev(),
			want: map[string]string{"event.dataset": `"x"`}},
		{name: "drop", proc: func(t *testing.T) process.Processor { return build[*processors.DropConfig](t, "drop", nil) },
			in: ev("message", str("m")), want: map[string]string{"message": `"m"`}, wantV: process.Drop},
	})
	// The route changes what Item.Dataset reports.
	it := process.NewItem(ev("event.dataset", str("syslog")), nil, "test")
	if _, err := build(t, "route", func(c *processors.RouteConfig) { c.Dataset = "aws.x" }).Process(it); err != nil || it.Dataset() != "aws.x" {
		t.Errorf("Dataset() = %q, %v", it.Dataset(), err)
	}
}

func TestReadOnly(t *testing.T) {
	for name, want := range map[string]bool{"drop": true, "validate": true, "set": false, "route": false} {
		typ := mustType(t, name)
		c := typ.NewConfig()
		switch c := c.(type) {
		case *processors.SetConfig:
			c.Field, c.Value = "a", "b"
		case *processors.RouteConfig:
			c.Dataset = "x"
		}
		p, err := typ.New(c, process.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		ro, ok := p.(process.ReadOnly)
		if got := ok && ro.ReadOnly(); got != want {
			t.Errorf("%s: read-only %v, want %v", name, got, want)
		}
	}
}

// chainOf builds a chain of the built-in types from configs the test validates.
func chainOf(t *testing.T, cfgs ...*config.Processor) *process.Chain {
	t.Helper()
	for i, pc := range cfgs {
		if err := pc.Settings.Validate(); err != nil {
			t.Fatalf("processor %d: %v", i, err)
		}
	}
	c, err := process.NewChain(cfgs, types, process.Deps{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pipelineEvent has the fields the processing stage sets before the processors.
func pipelineEvent(dataset string, kvs ...any) *event.Event {
	e := ev("@timestamp", event.Time(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)),
		"event.id", str("id-1"), "event.dataset", str(dataset), "ecs.version", str("8.11.0"))
	for i := 0; i < len(kvs); i += 2 {
		e.Set(kvs[i].(string), kvs[i+1].(event.Value))
	}
	return e
}

func TestValidateProcessor(t *testing.T) {
	c := chainOf(t, &config.Processor{Type: "validate", Name: "schema", Settings: processors.NewValidateConfig()})
	good := process.NewItem(pipelineEvent("myapp", "event.kind", str("event")), []byte("raw"), "test")
	if v, _, err := c.Run(good); err != nil || v != process.Pass {
		t.Fatalf("a good event: %v %v", v, err)
	}
	tests := []struct {
		name string
		e    *event.Event
	}{
		{"event.kind not in ECS", pipelineEvent("myapp", "event.kind", str("bogus"))},
		{"no event.id", ev("@timestamp", str("2024-05-06T07:08:09Z"), "event.dataset", str("myapp"), "ecs.version", str("8.11.0"))},
		{"@timestamp not a date", pipelineEvent("myapp", "@timestamp", str("yesterday"))},
		{"event.duration not an integer", pipelineEvent("myapp", "event.duration", str("long"))},
	}
	for _, tt := range tests {
		_, _, err := c.Run(process.NewItem(tt.e, []byte("raw"), "test"))
		var ve *process.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: err %v (%T), want a *process.ValidationError", tt.name, err, err)
			continue
		}
		var se *process.StepError
		if !errors.As(err, &se) || se.Type != "validate" || se.Name != "schema" || se.Index != 0 {
			t.Errorf("%s: step %+v", tt.name, se)
		}
		if process.DLQStage(err) != "validate" {
			t.Errorf("%s: stage %q", tt.name, process.DLQStage(err))
		}
	}
	// Called directly, the processor encodes the event itself.
	p := build(t, "validate", func(*processors.ValidateConfig) {})
	if _, err := p.Process(process.NewItem(pipelineEvent("myapp", "event.kind", str("bogus")), nil, "test")); !process.IsValidationError(err) {
		t.Errorf("direct: %v", err)
	}
}

func TestValidateProcessorSchemaFile(t *testing.T) {
	schema := filepath.Join(t.TempDir(), "myapp.json")
	if err := os.WriteFile(schema, []byte(`{"type":"object","required":["user"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := chainOf(t, &config.Processor{Type: "validate", Settings: newConfig(t, "validate", func(c *processors.ValidateConfig) {
		c.Datasets = map[string]string{"myapp": schema}
	})})
	if _, _, err := c.Run(process.NewItem(pipelineEvent("myapp"), nil, "test")); !process.IsValidationError(err) {
		t.Errorf("no user: %v", err)
	}
	if _, _, err := c.Run(process.NewItem(pipelineEvent("myapp", "user.name", str("a")), nil, "test")); err != nil {
		t.Errorf("with user: %v", err)
	}
	if _, _, err := c.Run(process.NewItem(pipelineEvent("other"), nil, "test")); err != nil {
		t.Errorf("another dataset: %v", err)
	}
}

// A chain of the built-in processors with conditions, as a config would set it up.
func TestChainOfBuiltins(t *testing.T) {
	c := chainOf(t,
		&config.Processor{Type: "drop", Name: "debug", If: `event.dataset == "syslog" && log.syslog.severity.code >= 7`, Settings: &processors.DropConfig{}},
		&config.Processor{Type: "redact", If: `user.email != nil`, Settings: newConfig(t, "redact", hashed("user.email"))},
		&config.Processor{Type: "rename", Settings: &processors.RenameConfig{Fields: map[string]string{"src_ip": "source.ip"}}},
		&config.Processor{Type: "set", Settings: &processors.SetConfig{Field: "related.ip", Expr: `[source.ip]`}},
		&config.Processor{Type: "route", If: `event.outcome == "failure" && "authentication" in event.category`, Settings: &processors.RouteConfig{Dataset: "security.auth"}},
		&config.Processor{Type: "validate", Settings: processors.NewValidateConfig()},
	)
	// Debug syslog is dropped, with the drop's name as the reason.
	v, reason, err := c.Run(process.NewItem(pipelineEvent("syslog", "log.syslog.severity.code", event.Int(7)), nil, "test"))
	if err != nil || v != process.Drop || reason != "drop:debug" {
		t.Errorf("debug syslog: %v %q %v", v, reason, err)
	}
	// A notice passes through every step.
	e := pipelineEvent("syslog", "log.syslog.severity.code", event.Int(5), "user.email", str("a@b"),
		"src_ip", str("10.0.0.1"), "event.outcome", str("failure"), "event.category", raw(`["authentication"]`))
	it := process.NewItem(e, nil, "test")
	v, _, err = c.Run(it)
	if err != nil || v != process.Pass {
		t.Fatalf("notice: %v %v", v, err)
	}
	got := dump(e)
	want := map[string]string{"user.email": `"` + hmacHex(hashKey, "a@b") + `"`, "source.ip": `"10.0.0.1"`,
		"related.ip": `["10.0.0.1"]`, "event.dataset": `"security.auth"`}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %s, want %s", k, got[k], w)
		}
	}
	if _, ok := got["src_ip"]; ok {
		t.Error("src_ip kept")
	}
	if it.Dataset() != "security.auth" {
		t.Errorf("Dataset() = %q", it.Dataset())
	}
	// A set that makes event.dataset invalid rejects the event.
	bad := chainOf(t, &config.Processor{Type: "set", Settings: &processors.SetConfig{Field: "event.dataset", Value: "not a dataset"}})
	if _, _, err := bad.Run(process.NewItem(pipelineEvent("syslog"), nil, "test")); err == nil || process.DLQStage(err) != "process" {
		t.Errorf("invalid dataset: %v", err)
	}
}

func TestConfigured(t *testing.T) {
	cfg := config.Defaults()
	cfg.Processing.Processors = []*config.Processor{{Type: "drop"}}
	if got := processors.Configured(cfg); len(got) != 1 {
		t.Errorf("validate disabled: %d processors", len(got))
	}
	cfg.Processing.Validate.Enabled = true
	cfg.Processing.Validate.RequireSchema = true
	got := processors.Configured(cfg)
	if len(got) != 2 || got[1].Type != "validate" || got[1].Name != "processing.validate" {
		t.Fatalf("validate enabled: %+v", got)
	}
	if vc, ok := got[1].Settings.(*processors.ValidateConfig); !ok || !vc.RequireSchema {
		t.Errorf("settings %+v", got[1].Settings)
	}
	if len(cfg.Processing.Processors) != 1 {
		t.Error("Configured changed the config's list")
	}
}

func TestValidateErrors(t *testing.T) {
	set := func(f func(*processors.SetConfig)) func(t *testing.T) config.Component {
		return func(t *testing.T) config.Component { return newConfig(t, "set", f) }
	}
	rename := func(fields map[string]string) func(t *testing.T) config.Component {
		return func(t *testing.T) config.Component {
			return newConfig(t, "rename", func(c *processors.RenameConfig) { c.Fields = fields })
		}
	}
	remove := func(fields ...string) func(t *testing.T) config.Component {
		return func(t *testing.T) config.Component {
			return newConfig(t, "remove", func(c *processors.RemoveConfig) { c.Fields = fields })
		}
	}
	redact := func(f func(*processors.RedactConfig)) func(t *testing.T) config.Component {
		return func(t *testing.T) config.Component { return newConfig(t, "redact", f) }
	}
	route := func(ds string) func(t *testing.T) config.Component {
		return func(t *testing.T) config.Component {
			return newConfig(t, "route", func(c *processors.RouteConfig) { c.Dataset = ds })
		}
	}
	tests := []struct {
		name string
		cfg  func(t *testing.T) config.Component
		want []string // substrings of the error; none: valid
	}{
		{"set: no field", set(func(c *processors.SetConfig) { c.Value = "x" }), []string{"field: missing"}},
		{"set: no value", set(func(c *processors.SetConfig) { c.Field = "a" }), []string{"give exactly one of value, value_from and expr"}},
		{"set: value and value_from", set(func(c *processors.SetConfig) { c.Field, c.Value, c.ValueFrom = "a", "x", "b" }), []string{"exactly one"}},
		{"set: value and expr", set(func(c *processors.SetConfig) { c.Field, c.Value, c.Expr = "a", "x", "b" }), []string{"exactly one"}},
		{"set: value_from and expr", set(func(c *processors.SetConfig) { c.Field, c.ValueFrom, c.Expr = "a", "x", "b" }), []string{"exactly one"}},
		{"set: all three", set(func(c *processors.SetConfig) { c.Field, c.Value, c.ValueFrom, c.Expr = "a", 1, "x", "b" }), []string{"exactly one"}},
		{"set: event.id", set(func(c *processors.SetConfig) { c.Field, c.Value = "event.id", "x" }), []string{"event.id belongs to the pipeline"}},
		{"set: @timestamp", set(func(c *processors.SetConfig) { c.Field, c.Value = "@timestamp", "x" }), []string{"@timestamp belongs to the pipeline"}},
		{"set: bad expr", set(func(c *processors.SetConfig) { c.Field, c.Expr = "a", "b +" }), []string{"expr: expression"}},
		{"set: field() with a variable", set(func(c *processors.SetConfig) { c.Field, c.Expr = "a", "field(b)" }), []string{"expr: ", "field() takes one constant string"}},
		{"set: bad value_from", set(func(c *processors.SetConfig) { c.Field, c.ValueFrom = "a", "b..c" }), []string{"value_from: \"b..c\" is not a field path"}},
		{"set: value not a field value", set(func(c *processors.SetConfig) { c.Field, c.Value = "a", []any{math.NaN()} }), []string{"value: "}},
		{"set: bad field", set(func(c *processors.SetConfig) { c.Field, c.Value = ".a", "x" }), []string{`field: ".a" is not a field path`}},
		{"set: field with a quote", set(func(c *processors.SetConfig) { c.Field, c.Value = `a"b`, "x" }), []string{"a character a field name cannot have"}},
		{"set: event.dataset is allowed", set(func(c *processors.SetConfig) { c.Field, c.Value = "event.dataset", "x" }), nil},
		{"set: valid expr", set(func(c *processors.SetConfig) { c.Field, c.Expr = "a", `field("@timestamp")` }), nil},

		{"rename: no fields", rename(nil), []string{"fields: missing"}},
		{"rename: from event.id", rename(map[string]string{"event.id": "x"}), []string{"event.id belongs to the pipeline"}},
		{"rename: to event.id", rename(map[string]string{"x": "event.id"}), []string{"event.id belongs to the pipeline"}},
		{"rename: from @timestamp", rename(map[string]string{"@timestamp": "x"}), []string{"@timestamp belongs to the pipeline"}},
		{"rename: from event.dataset", rename(map[string]string{"event.dataset": "x"}), []string{"event.dataset belongs to the pipeline"}},
		{"rename: to event.dataset", rename(map[string]string{"x": "event.dataset"}), []string{"event.dataset belongs to the pipeline"}},
		{"rename: the whole event object", rename(map[string]string{"event": "x"}), []string{"event belongs to the pipeline"}},
		{"rename: into itself", rename(map[string]string{"a": "a.b"}), []string{"a cannot be renamed to a.b (into itself)"}},
		{"rename: to itself", rename(map[string]string{"a": "a"}), []string{"into itself"}},
		{"rename: bad path", rename(map[string]string{"a.": "b"}), []string{`"a." is not a field path`}},
		{"rename: empty destination", rename(map[string]string{"a": ""}), []string{"fields: missing"}},
		{"rename: valid", rename(map[string]string{"src_ip": "source.ip", "a.b": "a"}), nil},

		{"remove: no fields", remove(), []string{"fields: missing"}},
		{"remove: event.id", remove("event.id"), []string{"event.id belongs to the pipeline"}},
		{"remove: @timestamp", remove("@timestamp"), []string{"@timestamp belongs to the pipeline"}},
		{"remove: event.dataset", remove("event.dataset"), []string{"event.dataset belongs to the pipeline"}},
		{"remove: event", remove("event"), []string{"event belongs to the pipeline"}},
		{"remove: bad path and protected together", remove("a..b", "event.id"), []string{`"a..b" is not a field path`, "event.id belongs"}},
		{"remove: empty path", remove(""), []string{"fields: missing"}},
		{"remove: valid", remove("event.original", "url.query"), nil},

		{"redact: no fields", redact(func(c *processors.RedactConfig) { c.Key = hashKey }), []string{"fields: missing"}},
		{"redact: hash without a key", redact(func(c *processors.RedactConfig) { c.Fields = []string{"a"} }), []string{"key: mode hash needs a key of at least 16 bytes"}},
		{"redact: short key", redact(func(c *processors.RedactConfig) { c.Fields, c.Key = []string{"a"}, "short" }), []string{"at least 16 bytes"}},
		{"redact: key of 16 bytes", redact(func(c *processors.RedactConfig) { c.Fields, c.Key = []string{"a"}, "0123456789abcdef" }), nil},
		{"redact: protected", redact(func(c *processors.RedactConfig) { c.Fields, c.Key = []string{"event.id"}, hashKey }), []string{"event.id belongs to the pipeline"}},
		{"redact: bad mode", redact(func(c *processors.RedactConfig) { c.Fields, c.Mode = []string{"a"}, "shred" }), []string{`mode: want hash, mask or remove, got "shred"`}},
		{"redact: key for mask", redact(func(c *processors.RedactConfig) { c.Fields, c.Mode, c.Key = []string{"a"}, "mask", hashKey }), []string{"key: only for mode hash"}},
		{"redact: empty mask_char", redact(func(c *processors.RedactConfig) { c.Fields, c.Mode, c.MaskChar = []string{"a"}, "mask", "" }), []string{"mask_char: want one character"}},
		{"redact: two mask chars", redact(func(c *processors.RedactConfig) { c.Fields, c.Mode, c.MaskChar = []string{"a"}, "mask", "**" }), []string{"mask_char: want one character"}},
		{"redact: one multibyte mask char", redact(func(c *processors.RedactConfig) { c.Fields, c.Mode, c.MaskChar = []string{"a"}, "mask", "•" }), nil},
		{"redact: negative keep_last", redact(func(c *processors.RedactConfig) { c.Fields, c.Mode, c.KeepLast = []string{"a"}, "mask", -1 }), []string{"keep_last: must not be negative"}},
		{"redact: remove", redact(func(c *processors.RedactConfig) { c.Fields, c.Mode = []string{"a"}, "remove" }), nil},

		{"route: empty", route(""), []string{"dataset: want letters"}},
		{"route: space", route("security high"), []string{`got "security high"`}},
		{"route: glob", route("aws.*"), []string{"dataset: "}},
		{"route: double dot", route("a..b"), []string{"dataset: "}},
		{"route: valid", route("security.high"), nil},

		{"validate: empty pattern value", func(t *testing.T) config.Component {
			return newConfig(t, "validate", func(c *processors.ValidateConfig) { c.Datasets = map[string]string{"myapp": ""} })
		}, []string{"datasets: \"myapp\": empty"}},
		{"validate: missing schema file", func(t *testing.T) config.Component {
			return newConfig(t, "validate", func(c *processors.ValidateConfig) { c.Datasets = map[string]string{"myapp": "/no/such/schema.json"} })
		}, []string{"schema file"}},
		{"validate: defaults", func(t *testing.T) config.Component { return newConfig[*processors.ValidateConfig](t, "validate", nil) }, nil},
		{"drop: always valid", func(t *testing.T) config.Component { return newConfig[*processors.DropConfig](t, "drop", nil) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg(t).Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}
