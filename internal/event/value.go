// Package event holds Vigil's event and batch types: the flat field list a parser fills,
// the append-style ECS JSON encoder, deterministic event IDs and the wire formats of the
// batches that cross the stream. It depends on nothing else of Vigil's.
package event

import (
	"strconv"
	"time"
)

// Kind says which member of a Value is set.
type Kind uint8

// The kinds of Value.
const (
	KindNull    Kind = iota
	KindString       // s
	KindBytes        // b, borrowed: valid only until the event is encoded
	KindInt          // n
	KindFloat        // f
	KindBool         // n != 0
	KindTime         // t
	KindRaw          // b holds one complete, valid JSON value
	KindStrings      // ss, a JSON array of strings
)

// Value is one leaf of an event. The zero Value is JSON null.
type Value struct {
	kind Kind
	n    int64
	f    float64
	s    string
	b    []byte
	ss   []string
	t    time.Time
}

// String returns a string value.
func String(s string) Value { return Value{kind: KindString, s: s} }

// Bytes returns a string value that borrows b: the caller must keep b unchanged until
// the event has been encoded. Parsers use it to point into the record they parse.
func Bytes(b []byte) Value { return Value{kind: KindBytes, b: b} }

// Int returns an integer value.
func Int(n int64) Value { return Value{kind: KindInt, n: n} }

// Float returns a floating-point value. NaN and infinities encode as null.
func Float(f float64) Value { return Value{kind: KindFloat, f: f} }

// Bool returns a boolean value.
func Bool(v bool) Value {
	if v {
		return Value{kind: KindBool, n: 1}
	}
	return Value{kind: KindBool}
}

// Time returns a timestamp value, encoded as RFC 3339 in UTC with every fractional
// digit the time carries (trailing zeros trimmed).
func Time(t time.Time) Value { return Value{kind: KindTime, t: t} }

// Raw returns a value that is already JSON. The caller guarantees that b is exactly one
// valid JSON value; the encoder copies it verbatim. Raw borrows b like Bytes.
func Raw(b []byte) Value { return Value{kind: KindRaw, b: b} }

// Strings returns an array-of-strings value. The event keeps ss; the caller must not
// change it until the event has been encoded.
func Strings(ss []string) Value { return Value{kind: KindStrings, ss: ss} }

// Kind reports which kind of value v is.
func (v Value) Kind() Kind { return v.kind }

// Str returns the text of a string or bytes value, and "" for every other kind.
func (v Value) Str() string {
	switch v.kind {
	case KindString:
		return v.s
	case KindBytes:
		return string(v.b)
	}
	return ""
}

// IsNull reports whether v is JSON null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// AsInt returns the integer of an Int value.
func (v Value) AsInt() (int64, bool) { return v.n, v.kind == KindInt }

// AsFloat returns the number of an Int or Float value.
func (v Value) AsFloat() (float64, bool) {
	switch v.kind {
	case KindInt:
		return float64(v.n), true
	case KindFloat:
		return v.f, true
	}
	return 0, false
}

// AsBool returns the boolean of a Bool value.
func (v Value) AsBool() (bool, bool) { return v.n != 0, v.kind == KindBool }

// AsTime returns the time of a Time value.
func (v Value) AsTime() (time.Time, bool) { return v.t, v.kind == KindTime }

// RawJSON returns the bytes of a Raw value.
func (v Value) RawJSON() ([]byte, bool) { return v.b, v.kind == KindRaw }

// AsBytes returns the borrowed bytes of a Bytes value, without copying them; the
// caller must not change or keep them.
func (v Value) AsBytes() ([]byte, bool) { return v.b, v.kind == KindBytes }

// AsStrings returns the slice of a Strings value.
func (v Value) AsStrings() ([]string, bool) { return v.ss, v.kind == KindStrings }

// AppendJSON appends v encoded as JSON to dst.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.kind {
	case KindString:
		return AppendString(dst, v.s)
	case KindBytes:
		return AppendStringBytes(dst, v.b)
	case KindInt:
		return strconv.AppendInt(dst, v.n, 10)
	case KindFloat:
		return appendFloat(dst, v.f)
	case KindBool:
		if v.n != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case KindTime:
		dst = append(dst, '"')
		dst = AppendTimestamp(dst, v.t)
		return append(dst, '"')
	case KindRaw:
		return append(dst, v.b...)
	case KindStrings:
		dst = append(dst, '[')
		for i, s := range v.ss {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, s)
		}
		return append(dst, ']')
	}
	return append(dst, "null"...)
}

// AppendTimestamp appends t as RFC 3339 in UTC with all its fractional digits, trailing
// zeros trimmed, the way Elasticsearch's date_nanos and strict_date_optional_time read it.
func AppendTimestamp(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, time.RFC3339Nano)
}
