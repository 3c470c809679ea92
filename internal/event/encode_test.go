package event

import (
	"encoding/json"
	"testing"
	"time"
)

func encode(e *Event) string {
	var enc Encoder
	return string(enc.Append(nil, e))
}

func TestEncoderAppend(t *testing.T) {
	type kv struct {
		k string
		v Value
	}
	tests := []struct {
		name string
		give []kv
		want string
	}{
		{"empty", nil, `{}`},
		{"one leaf", []kv{{"message", String("hi")}}, `{"message":"hi"}`},
		{"nested", []kv{{"source.ip", String("10.0.0.1")}, {"source.port", Int(443)}},
			`{"source":{"ip":"10.0.0.1","port":443}}`},
		{"sorted", []kv{{"z", Int(1)}, {"a", Int(2)}, {"m.b", Int(3)}, {"m.a", Int(4)}},
			`{"a":2,"m":{"a":4,"b":3},"z":1}`},
		{"deep then shallow", []kv{{"a.b.c.d", Int(1)}, {"a.e", Int(2)}, {"f", Int(3)}},
			`{"a":{"b":{"c":{"d":1}},"e":2},"f":3}`},
		{"siblings after closing", []kv{{"a.b.c", Int(1)}, {"a.b.d", Int(2)}, {"a.c", Int(3)}, {"b.a", Int(4)}},
			`{"a":{"b":{"c":1,"d":2},"c":3},"b":{"a":4}}`},
		// '.' sorts before every other byte, so "a.b" stays next to "a" and its object
		// is not split by "a-b" or "a!".
		{"dot sorts first", []kv{{"a-b", Int(1)}, {"a.b", Int(2)}, {"a!", Int(3)}, {"a.c", Int(4)}, {"a", Int(5)}},
			`{"a":{"value":5,"b":2,"c":4},"a!":3,"a-b":1}`},
		{"scalar and children", []kv{{"event.dataset", String("x")}, {"event", String("raw")}},
			`{"event":{"value":"raw","dataset":"x"}}`},
		{"scalar and children at depth", []kv{{"a.b", Int(1)}, {"a.b.c", Int(2)}, {"a.b.c.d", Int(3)}, {"a.x", Int(4)}},
			`{"a":{"b":{"value":1,"c":{"value":2,"d":3}},"x":4}}`},
		{"add twice keeps last", []kv{{"k", Int(1)}, {"j", Int(0)}, {"k", Int(2)}, {"k", Int(3)}},
			`{"j":0,"k":3}`},
		{"add twice nested keeps last", []kv{{"a.b", Int(1)}, {"a.c", Int(9)}, {"a.b", Int(2)}},
			`{"a":{"b":2,"c":9}}`},
		{"add twice with children", []kv{{"a", Int(1)}, {"a.b", Int(2)}, {"a", Int(3)}},
			`{"a":{"value":3,"b":2}}`},
		// An explicit "<key>.value" next to a scalar at <key> would otherwise give the
		// object the member "value" twice, which Elasticsearch rejects.
		{"explicit value wins", []kv{{"a", Int(1)}, {"a.value", Int(2)}, {"a.x", Int(3)}},
			`{"a":{"value":2,"x":3}}`},
		{"explicit value object", []kv{{"a", Int(1)}, {"a.value.x", Int(2)}},
			`{"a":{"value":{"x":2}}}`},
		{"explicit value only below", []kv{{"a", Int(1)}, {"a.valuex", Int(2)}},
			`{"a":{"value":1,"valuex":2}}`},
		{"keys escaped", []kv{{"a\"b.c\\d", Int(1)}, {"\n", Int(2)}},
			`{"\n":2,"a\"b":{"c\\d":1}}`},
		{"empty segments", []kv{{"a.", Int(1)}, {"a.b", Int(2)}},
			`{"a":{"":1,"b":2}}`},
		{"all kinds", []kv{
			{"n", Value{}}, {"s", String("x")}, {"b", Bytes([]byte("y"))}, {"i", Int(-7)},
			{"f", Float(1.5)}, {"t", Bool(true)}, {"u", Bool(false)},
			{"ts", Time(time.Date(2024, 5, 6, 7, 8, 9, 120000000, time.UTC))},
			{"r", Raw([]byte(`[1,{"a":2}]`))}, {"ss", Strings([]string{"p", "q"})},
		}, `{"b":"y","f":1.5,"i":-7,"n":null,"r":[1,{"a":2}],"s":"x","ss":["p","q"],"t":true,"ts":"2024-05-06T07:08:09.12Z","u":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Event
			for _, f := range tt.give {
				e.Add(f.k, f.v)
			}
			got := encode(&e)
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

func TestEncoderReuse(t *testing.T) {
	var enc Encoder
	var e1, e2 Event
	e1.Add("a.b.c", Int(1))
	e1.Add("a", Int(0))
	e2.Add("x", Int(2))
	_ = enc.Append(nil, &e1)
	if got := string(enc.Append(nil, &e2)); got != `{"x":2}` {
		t.Errorf("reused encoder: got %s", got)
	}
	// Append appends: existing bytes are kept.
	if got := string(enc.Append([]byte("prefix "), &e2)); got != `prefix {"x":2}` {
		t.Errorf("got %q", got)
	}
	// The event's field order is not changed by encoding.
	if e1.Fields[0].Key != "a.b.c" {
		t.Errorf("Append reordered the event's fields")
	}
}

func TestComparePaths(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"a", "a", 0},
		{"a", "b", -1},
		{"a", "a.b", -1},
		{"a.b", "a-b", -1},
		{"a.b", "a!", -1},
		{"a.z", "aa", -1},
		{"ab", "a.b", 1},
		{"", "a", -1},
	}
	for _, tt := range tests {
		got := comparePaths(tt.a, tt.b)
		if sign(got) != tt.want {
			t.Errorf("comparePaths(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
		if sign(comparePaths(tt.b, tt.a)) != -tt.want {
			t.Errorf("comparePaths(%q, %q) not antisymmetric", tt.b, tt.a)
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestEventSetGetHasDelete(t *testing.T) {
	var e Event
	e.Set("a.b", Int(1))
	e.Set("a.b", Int(2))
	e.SetString("empty", "")
	e.SetString("s", "x")
	e.Add("c", Int(3))
	if len(e.Fields) != 3 {
		t.Fatalf("fields = %v", e.Fields)
	}
	if v, ok := e.Get("a.b"); !ok || v.n != 2 {
		t.Errorf("Get(a.b) = %v, %v", v, ok)
	}
	if _, ok := e.Get("empty"); ok {
		t.Errorf("SetString set an empty string")
	}
	if !e.Has("a") || !e.Has("a.b") || e.Has("a.b.c") || e.Has("ab") {
		t.Errorf("Has wrong")
	}
	e.Add("ab", Int(4))
	e.Delete("a")
	if e.Has("a.b") || !e.Has("ab") {
		t.Errorf("Delete(a) removed the wrong leaves: %v", e.Fields)
	}
	e.ID, e.Dataset, e.Time = "id", "ds", time.Now()
	e.Reset()
	if len(e.Fields) != 0 || e.ID != "" || e.Dataset != "" || !e.Time.IsZero() || cap(e.Fields) == 0 {
		t.Errorf("Reset left %+v", e)
	}
}
