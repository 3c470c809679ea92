package event

import (
	"encoding/json"
	"math"
	"testing"
	"time"
	"unsafe"
)

func TestValueAppendJSON(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	tests := []struct {
		name string
		give Value
		want string
	}{
		{"zero is null", Value{}, "null"},
		{"string", String("a\"b"), `"a\"b"`},
		{"bytes", Bytes([]byte("a\nb")), `"a\nb"`},
		{"bytes nil", Bytes(nil), `""`},
		{"int", Int(math.MinInt64), "-9223372036854775808"},
		{"int max", Int(math.MaxInt64), "9223372036854775807"},
		{"float", Float(2.25), "2.25"},
		{"float NaN", Float(math.NaN()), "null"},
		{"float +Inf", Float(math.Inf(1)), "null"},
		{"float -Inf", Float(math.Inf(-1)), "null"},
		{"true", Bool(true), "true"},
		{"false", Bool(false), "false"},
		{"time UTC whole second", Time(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)), `"2024-01-02T03:04:05Z"`},
		{"time nanoseconds", Time(time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)), `"2024-01-02T03:04:05.123456789Z"`},
		{"time trailing zeros trimmed", Time(time.Date(2024, 1, 2, 3, 4, 5, 100000, time.UTC)), `"2024-01-02T03:04:05.0001Z"`},
		{"time converted to UTC", Time(time.Date(2024, 1, 1, 22, 0, 0, 1, est)), `"2024-01-02T03:00:00.000000001Z"`},
		{"time local monotonic", Time(time.Unix(1700000000, 5).In(est)), `"2023-11-14T22:13:20.000000005Z"`},
		{"time zero", Time(time.Time{}), `"0001-01-01T00:00:00Z"`},
		{"raw", Raw([]byte(`{"a":[1,2]}`)), `{"a":[1,2]}`},
		{"strings", Strings([]string{"a", "b\"", "\xff"}), `["a","b\"","\ufffd"]`},
		{"strings empty", Strings(nil), `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.give.AppendJSON([]byte("x")))
			if got != "x"+tt.want {
				t.Errorf("got %s, want %s", got[1:], tt.want)
			}
			if !json.Valid([]byte(got[1:])) {
				t.Errorf("not valid JSON: %s", got[1:])
			}
		})
	}
}

func TestValueAccessors(t *testing.T) {
	now := time.Now()
	if String("s").Kind() != KindString || String("s").Str() != "s" {
		t.Error("String")
	}
	if Bytes([]byte("b")).Kind() != KindBytes || Bytes([]byte("b")).Str() != "b" {
		t.Error("Bytes")
	}
	if Int(3).Str() != "" {
		t.Error("Str of a non-string must be empty")
	}
	if n, ok := Int(3).AsInt(); !ok || n != 3 {
		t.Error("AsInt")
	}
	if _, ok := Float(1).AsInt(); ok {
		t.Error("AsInt of a float")
	}
	if f, ok := Int(3).AsFloat(); !ok || f != 3 {
		t.Error("AsFloat of an int")
	}
	if f, ok := Float(1.5).AsFloat(); !ok || f != 1.5 {
		t.Error("AsFloat")
	}
	if _, ok := String("1").AsFloat(); ok {
		t.Error("AsFloat of a string")
	}
	if b, ok := Bool(true).AsBool(); !ok || !b {
		t.Error("AsBool true")
	}
	if b, ok := Bool(false).AsBool(); !ok || b {
		t.Error("AsBool false")
	}
	if _, ok := Int(1).AsBool(); ok {
		t.Error("AsBool of an int")
	}
	if tm, ok := Time(now).AsTime(); !ok || !tm.Equal(now) {
		t.Error("AsTime")
	}
	if b, ok := Raw([]byte("1")).RawJSON(); !ok || string(b) != "1" {
		t.Error("RawJSON")
	}
	if _, ok := Bytes([]byte("1")).RawJSON(); ok {
		t.Error("RawJSON of bytes")
	}
	if ss, ok := Strings([]string{"a"}).AsStrings(); !ok || len(ss) != 1 {
		t.Error("AsStrings")
	}
	if !(Value{}).IsNull() || Int(0).IsNull() {
		t.Error("IsNull")
	}
}

func TestAppendTimestamp(t *testing.T) {
	ts := time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.FixedZone("", 3600))
	if got := string(AppendTimestamp(nil, ts)); got != "2024-02-29T22:59:59.999999999Z" {
		t.Errorf("got %s", got)
	}
	back, err := time.Parse(time.RFC3339Nano, string(AppendTimestamp(nil, ts)))
	if err != nil || !back.Equal(ts) {
		t.Errorf("round trip: %v %v", back, err)
	}
}

// A Value stays 32 bytes with one pointer (see its comment): the size of every field
// of every event, copied and scanned on the hot path.
func TestValueSize(t *testing.T) {
	if n := unsafe.Sizeof(Value{}); n != 32 {
		t.Fatalf("Value is %d bytes, want 32", n)
	}
	if n := unsafe.Sizeof(Field{}); n != 48 {
		t.Fatalf("Field is %d bytes, want 48", n)
	}
}

func TestValueRoundTripsAndEqual(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	at := time.Date(2026, 12, 7, 9, 30, 1, 123456789, est)
	v := Time(at)
	got, ok := v.AsTime()
	if !ok || !got.Equal(at) || got.Location() != est || got.Hour() != 9 {
		t.Fatalf("AsTime: %v %v, want %v in its zone", got, ok, at)
	}
	if s := string(v.AppendJSON(nil)); s != `"2026-12-07T14:30:01.123456789Z"` {
		t.Fatalf("time JSON %s", s)
	}
	if got, _ := Time(time.Time{}).AsTime(); !got.IsZero() {
		t.Fatalf("zero time back as %v", got)
	}
	if f, ok := Float(-2.5).AsFloat(); !ok || f != -2.5 {
		t.Fatalf("AsFloat %v %v", f, ok)
	}
	if b, ok := Bytes([]byte("ab")).AsBytes(); !ok || string(b) != "ab" {
		t.Fatalf("AsBytes %q %v", b, ok)
	}
	if ss, ok := Strings([]string{"a", "b"}).AsStrings(); !ok || len(ss) != 2 || ss[1] != "b" {
		t.Fatalf("AsStrings %v %v", ss, ok)
	}
	if n, ok := String("x").AsInt(); ok || n != 0 {
		t.Fatalf("AsInt of a string: %v %v", n, ok)
	}
	for _, c := range []struct {
		a, b Value
		want bool
	}{
		{String("ab"), String(string([]byte("ab"))), true},
		{String("ab"), Bytes([]byte("ab")), false},
		{Bytes([]byte("ab")), Bytes([]byte("ab")), true},
		{Raw([]byte(`{}`)), Raw([]byte(`{}`)), true},
		{Strings([]string{"a"}), Strings([]string{"a"}), true},
		{Strings([]string{"a"}), Strings([]string{"a", "b"}), false},
		{Int(1), Int(1), true},
		{Int(1), Bool(true), false},
		{Float(1), Float(1), true},
		{Time(at), Time(at.UTC()), false}, // same instant, other location
		{Time(at), Time(at.Add(time.Nanosecond).Add(-time.Nanosecond)), true},
		{Value{}, Value{}, true},
	} {
		if got := c.a.Equal(c.b); got != c.want {
			t.Errorf("%s Equal %s: %v, want %v", c.a.AppendJSON(nil), c.b.AppendJSON(nil), got, c.want)
		}
	}
}
