package cond

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/event"
)

// FuzzCompile feeds arbitrary expressions to CompileBool and Compile and evaluates
// what compiles against a small event: nothing may panic, a compiled condition
// evaluates to a boolean or an error, and Value accepts or rejects every result.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		`event.dataset == "syslog" && log.syslog.severity.code >= 7`,
		`event.dataset startsWith "aws."`,
		`event.outcome == "failure" && event.category == "authentication"`,
		`"iam" in event.category`,
		`field("@timestamp") > date("2024-01-01T00:00:00Z")`,
		`field("labels.my-tag") == "blue"`,
		`user.name matches "^a" || len(user) > 1`,
		`no.such.field ?? "x"`,
		`let u = user; u.name == "alice"`,
		`any(event.type, # == "user") && network.ports[0] == 22`,
		`http.response.status_code >= 400 ? "error" : "ok"`,
		`source.ip startsWith "10." and not (source.port in [22, 3389])`,
		`field(x)`,
		`event.dataset ==`,
		`map(network.ports, # * 2)`,
		`upper(user.name) + string(log.syslog.severity.code)`,
	} {
		f.Add(seed)
	}
	e := &event.Event{}
	e.Set("@timestamp", event.Time(testTime))
	e.Set("event.dataset", event.String("syslog"))
	e.Set("event.outcome", event.Bytes([]byte("failure")))
	e.Set("event.category", event.Raw([]byte(`["authentication","iam"]`)))
	e.Set("event.type", event.Strings([]string{"start", "user"}))
	e.Set("log.syslog.severity.code", event.Int(7))
	e.Set("event.risk_score", event.Float(2.5))
	e.Set("network.ports", event.Raw([]byte(`[22, 443.5, {"a": null}]`)))
	e.Set("user.name", event.String("alice"))
	e.Set("user.group.name", event.String("admins"))
	e.Set("labels.my-tag", event.String("blue"))
	e.Set("error.message", event.Value{})
	ev := NewEvaluator()
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 512 {
			return // long inputs only slow the search; expr's limits are not the subject
		}
		if p, err := CompileBool(src); err == nil {
			_, _ = ev.True(p, e)
			_ = p.Fields()
		}
		if p, err := Compile(src); err == nil {
			if out, err := ev.Eval(p, e); err == nil {
				_, _ = Value(out)
			}
		}
	})
}
