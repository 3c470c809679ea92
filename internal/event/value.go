// Package event holds Vigil's event and batch types: the flat field list a parser fills,
// the append-style ECS JSON encoder, deterministic event IDs and the wire formats of the
// batches that cross the stream. It depends on nothing else of Vigil's.
package event

import (
	"math"
	"strconv"
	"time"
	"unsafe"
)

// Kind says which member of a Value is set.
type Kind uint8

// The kinds of Value.
const (
	KindNull    Kind = iota
	KindString       // a string
	KindBytes        // borrowed bytes: valid only until the event is encoded
	KindInt          // an integer
	KindFloat        // a floating-point number
	KindBool         // a boolean
	KindTime         // a time
	KindRaw          // bytes holding one complete, valid JSON value
	KindStrings      // a JSON array of strings
)

// Value is one leaf of an event. The zero Value is JSON null.
//
// It is 32 bytes with one pointer: an event is a list of values, copied as fields
// are added and set and walked by the garbage collector while it marks, and every
// byte and pointer of a value is paid per field (write barriers while a collection
// runs). p points at a string's or bytes' first byte, a Strings value's first
// element, or a time's location; n is an integer, a float's bits, a boolean, or a
// time's Unix seconds; x is a length or a time's nanoseconds. Compare values with
// Equal, not reflect.DeepEqual (which compares p).
type Value struct {
	p    unsafe.Pointer
	n    int64
	x    int64
	kind Kind
}

// String returns a string value.
func String(s string) Value {
	return Value{kind: KindString, p: unsafe.Pointer(unsafe.StringData(s)), x: int64(len(s))}
}

// Bytes returns a string value that borrows b: the caller must keep b unchanged until
// the event has been encoded. Parsers use it to point into the record they parse.
func Bytes(b []byte) Value { return bytesValue(KindBytes, b) }

func bytesValue(k Kind, b []byte) Value {
	if len(b) == 0 {
		return Value{kind: k}
	}
	return Value{kind: k, p: unsafe.Pointer(unsafe.SliceData(b)), x: int64(len(b))}
}

// Int returns an integer value.
func Int(n int64) Value { return Value{kind: KindInt, n: n} }

// Float returns a floating-point value. NaN and infinities encode as null.
func Float(f float64) Value { return Value{kind: KindFloat, n: int64(math.Float64bits(f))} }

// Bool returns a boolean value.
func Bool(v bool) Value {
	if v {
		return Value{kind: KindBool, n: 1}
	}
	return Value{kind: KindBool}
}

// Time returns a timestamp value, encoded as RFC 3339 in UTC with every fractional
// digit the time carries (trailing zeros trimmed). AsTime gives back the same
// instant in the same location, without a monotonic clock reading.
func Time(t time.Time) Value {
	return Value{kind: KindTime, n: t.Unix(), x: int64(t.Nanosecond()), p: unsafe.Pointer(t.Location())}
}

// Raw returns a value that is already JSON. The caller guarantees that b is exactly one
// valid JSON value; the encoder copies it verbatim. Raw borrows b like Bytes.
func Raw(b []byte) Value { return bytesValue(KindRaw, b) }

// Strings returns an array-of-strings value. The event keeps ss; the caller must not
// change it until the event has been encoded.
func Strings(ss []string) Value {
	if len(ss) == 0 {
		return Value{kind: KindStrings}
	}
	return Value{kind: KindStrings, p: unsafe.Pointer(unsafe.SliceData(ss)), x: int64(len(ss))}
}

// Kind reports which kind of value v is.
func (v Value) Kind() Kind { return v.kind }

// str is the text of a string value.
func (v Value) str() string {
	if v.p == nil {
		return ""
	}
	return unsafe.String((*byte)(v.p), int(v.x))
}

// bytes is the bytes of a bytes or raw value (their length is their capacity).
func (v Value) bytes() []byte {
	if v.p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(v.p), int(v.x))
}

func (v Value) strings() []string {
	if v.p == nil {
		return nil
	}
	return unsafe.Slice((*string)(v.p), int(v.x))
}

func (v Value) float() float64 { return math.Float64frombits(uint64(v.n)) }

func (v Value) time() time.Time {
	t := time.Unix(v.n, v.x)
	if v.p == nil {
		return t.UTC()
	}
	return t.In((*time.Location)(v.p))
}

// Str returns the text of a string or bytes value, and "" for every other kind.
func (v Value) Str() string {
	switch v.kind {
	case KindString:
		return v.str()
	case KindBytes:
		return string(v.bytes())
	}
	return ""
}

// IsNull reports whether v is JSON null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// AsInt returns the integer of an Int value.
func (v Value) AsInt() (int64, bool) {
	if v.kind != KindInt {
		return 0, false
	}
	return v.n, true
}

// AsFloat returns the number of an Int or Float value.
func (v Value) AsFloat() (float64, bool) {
	switch v.kind {
	case KindInt:
		return float64(v.n), true
	case KindFloat:
		return v.float(), true
	}
	return 0, false
}

// AsBool returns the boolean of a Bool value.
func (v Value) AsBool() (bool, bool) { return v.kind == KindBool && v.n != 0, v.kind == KindBool }

// AsTime returns the time of a Time value.
func (v Value) AsTime() (time.Time, bool) {
	if v.kind != KindTime {
		return time.Time{}, false
	}
	return v.time(), true
}

// RawJSON returns the bytes of a Raw value.
func (v Value) RawJSON() ([]byte, bool) {
	if v.kind != KindRaw {
		return nil, false
	}
	return v.bytes(), true
}

// AsBytes returns the borrowed bytes of a Bytes value, without copying them; the
// caller must not change or keep them.
func (v Value) AsBytes() ([]byte, bool) {
	if v.kind != KindBytes {
		return nil, false
	}
	return v.bytes(), true
}

// AsStrings returns the slice of a Strings value.
func (v Value) AsStrings() ([]string, bool) {
	if v.kind != KindStrings {
		return nil, false
	}
	return v.strings(), true
}

// Equal reports whether v and w are the same value: the same kind and content (a
// string and borrowed bytes of the same text are not equal; times are equal when
// they are the same instant in the same location).
func (v Value) Equal(w Value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case KindString:
		return v.str() == w.str()
	case KindBytes, KindRaw:
		return string(v.bytes()) == string(w.bytes())
	case KindStrings:
		a, b := v.strings(), w.strings()
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	case KindTime:
		return v.n == w.n && v.x == w.x && v.time().Location() == w.time().Location()
	case KindFloat:
		return v.float() == w.float() || (math.IsNaN(v.float()) && math.IsNaN(w.float()))
	}
	return v.n == w.n
}

// AppendJSON appends v encoded as JSON to dst.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.kind {
	case KindString:
		return AppendString(dst, v.str())
	case KindBytes:
		return AppendStringBytes(dst, v.bytes())
	case KindInt:
		return strconv.AppendInt(dst, v.n, 10)
	case KindFloat:
		return appendFloat(dst, v.float())
	case KindBool:
		if v.n != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case KindTime:
		dst = append(dst, '"')
		dst = time.Unix(v.n, v.x).UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	case KindRaw:
		return append(dst, v.bytes()...)
	case KindStrings:
		dst = append(dst, '[')
		for i, s := range v.strings() {
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
