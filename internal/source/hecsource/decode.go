package hecsource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
)

// Splunk's documented HEC status codes (the "code" of an answer).
const (
	codeSuccess            = 0
	codeTokenRequired      = 2
	codeInvalidAuth        = 3
	codeInvalidToken       = 4
	codeNoData             = 5
	codeInvalidDataFormat  = 6
	codeIncorrectIndex     = 7
	codeServerBusy         = 9
	codeChannelMissing     = 10
	codeInvalidChannel     = 11
	codeEventRequired      = 12
	codeEventBlank         = 13
	codeAckDisabled        = 14
	codeIndexedFields      = 15
	codeQueryAuthDisabled  = 16
	codeHealthy            = 17
	codeUnhealthyQueueFull = 18
)

// codeText is the text Splunk answers with each code.
var codeText = map[int]string{
	codeSuccess:            "Success",
	codeTokenRequired:      "Token is required",
	codeInvalidAuth:        "Invalid authorization",
	codeInvalidToken:       "Invalid token",
	codeNoData:             "No data",
	codeInvalidDataFormat:  "Invalid data format",
	codeIncorrectIndex:     "Incorrect index",
	codeServerBusy:         "Server is busy",
	codeChannelMissing:     "Data channel is missing",
	codeInvalidChannel:     "Invalid data channel",
	codeEventRequired:      "Event field is required",
	codeEventBlank:         "Event field cannot be blank",
	codeAckDisabled:        "ACK is disabled",
	codeIndexedFields:      "Error in handling indexed fields",
	codeQueryAuthDisabled:  "Query string authorization is not enabled",
	codeHealthy:            "HEC is healthy",
	codeUnhealthyQueueFull: "HEC is unhealthy, queues are full",
}

// eventError is an event of a request that cannot be taken: its Splunk code, its
// index in the request (Splunk's "invalid-event-number") and what was wrong.
type eventError struct {
	code   int
	number int
	detail string
}

func (e *eventError) Error() string {
	return fmt.Sprintf("event %d: %s: %s", e.number, codeText[e.code], e.detail)
}

// meta is the metadata of one event.
type meta struct {
	time       string // RFC 3339, or ""
	host       *string
	source     *string
	sourcetype *string
	index      *string
	fields     []byte // a JSON object, or nil
}

// hecEvent is one event of the event endpoint as sent.
type hecEvent struct {
	Time       json.RawMessage `json:"time"`
	Host       *string         `json:"host"`
	Source     *string         `json:"source"`
	Sourcetype *string         `json:"sourcetype"`
	Index      *string         `json:"index"`
	Event      json.RawMessage `json:"event"`
	Fields     json.RawMessage `json:"fields"`
}

// decoder turns request bodies into records. allowed, when not nil, holds the
// accepted indexes.
type decoder struct {
	allowed map[string]bool
}

// events decodes a body of the event endpoint into one record per event. The
// records share one buffer that the caller owns. On error nothing is returned: a
// request is taken whole or not at all.
func (d *decoder) events(body []byte) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var recs [][]byte
	var buf []byte
	var offs []int
	for n := 0; ; n++ {
		var ev hecEvent
		err := dec.Decode(&ev)
		if err == io.EOF {
			break
		}
		if err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, &eventError{codeInvalidDataFormat, n, fmt.Sprintf("field %q is a JSON %s, want %s", te.Field, te.Value, kind(te.Type.String()))}
			}
			return nil, &eventError{codeInvalidDataFormat, n, fmt.Sprintf("not a JSON object at byte %d: %v", dec.InputOffset(), err)}
		}
		raw := bytes.TrimSpace(ev.Event)
		switch {
		case len(raw) == 0 || string(raw) == "null":
			return nil, &eventError{codeEventRequired, n, `the "event" field is missing`}
		case string(raw) == `""`:
			return nil, &eventError{codeEventBlank, n, `the "event" field is an empty string`}
		}
		m := meta{host: ev.Host, source: ev.Source, sourcetype: ev.Sourcetype, index: ev.Index}
		if t := bytes.TrimSpace(ev.Time); len(t) > 0 && string(t) != "null" {
			ts, err := epochTime(t)
			if err != nil {
				return nil, &eventError{codeInvalidDataFormat, n, err.Error()}
			}
			m.time = ts
		}
		if err := d.checkIndex(m.index, n); err != nil {
			return nil, err
		}
		if f := bytes.TrimSpace(ev.Fields); len(f) > 0 && string(f) != "null" {
			if err := flatFields(f); err != nil {
				return nil, &eventError{codeIndexedFields, n, err.Error()}
			}
			m.fields = f
		}
		offs = append(offs, len(buf))
		buf = appendRecord(buf, raw, &m)
	}
	if len(offs) == 0 {
		return nil, &eventError{codeNoData, 0, "the body holds no events"}
	}
	offs = append(offs, len(buf))
	recs = make([][]byte, len(offs)-1)
	for i := range recs {
		recs[i] = buf[offs[i]:offs[i+1]:offs[i+1]]
	}
	return recs, nil
}

// raw turns a body of the raw endpoint into one record per non-blank line, each with
// the metadata m.
func (d *decoder) raw(body []byte, m *meta) ([][]byte, error) {
	if err := d.checkIndex(m.index, 0); err != nil {
		return nil, err
	}
	var buf []byte
	var offs []int
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		offs = append(offs, len(buf))
		buf = appendRawRecord(buf, line, m)
	}
	if len(offs) == 0 {
		return nil, &eventError{codeNoData, 0, "the body holds no events"}
	}
	offs = append(offs, len(buf))
	recs := make([][]byte, len(offs)-1)
	for i := range recs {
		recs[i] = buf[offs[i]:offs[i+1]:offs[i+1]]
	}
	return recs, nil
}

func (d *decoder) checkIndex(index *string, n int) error {
	if d.allowed == nil || index == nil || *index == "" || d.allowed[*index] {
		return nil
	}
	return &eventError{codeIncorrectIndex, n, "the index is not among allowed_indexes"}
}

// appendRecord appends the record of one event (see the package comment).
func appendRecord(dst, ev []byte, m *meta) []byte {
	dst = append(dst, '{')
	first := true
	switch ev[0] {
	case '{':
		inner := bytes.TrimSpace(ev[1 : len(ev)-1])
		if len(inner) > 0 {
			dst = append(dst, inner...)
			first = false
		}
	case '"':
		dst = append(dst, `"message":`...)
		dst = append(dst, ev...)
		first = false
	default:
		dst = append(dst, `"message":`...)
		dst = event.AppendStringBytes(dst, ev)
		first = false
	}
	return appendMeta(dst, m, first)
}

// appendRawRecord appends the record of one raw line.
func appendRawRecord(dst, line []byte, m *meta) []byte {
	dst = append(dst, `{"message":`...)
	dst = event.AppendStringBytes(dst, line)
	return appendMeta(dst, m, false)
}

func appendMeta(dst []byte, m *meta, first bool) []byte {
	sep := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
	}
	if m.time != "" {
		sep()
		dst = append(dst, `"@timestamp":"`...)
		dst = append(dst, m.time...)
		dst = append(dst, '"')
	}
	if m.host != nil {
		sep()
		dst = append(dst, `"host":{"name":`...)
		dst = event.AppendString(dst, *m.host)
		dst = append(dst, '}')
	}
	if m.source != nil || m.sourcetype != nil || m.index != nil || m.fields != nil {
		sep()
		dst = append(dst, `"splunk":{`...)
		inner := true
		str := func(name string, v *string) {
			if v == nil {
				return
			}
			if !inner {
				dst = append(dst, ',')
			}
			inner = false
			dst = append(dst, name...)
			dst = event.AppendString(dst, *v)
		}
		str(`"source":`, m.source)
		str(`"sourcetype":`, m.sourcetype)
		str(`"index":`, m.index)
		if m.fields != nil {
			if !inner {
				dst = append(dst, ',')
			}
			dst = append(dst, `"fields":`...)
			dst = append(dst, m.fields...)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// maxEpoch bounds the seconds of a time (year 2255): the nanoseconds must fit an
// int64.
const maxEpoch = 9_000_000_000

// epochTime turns an HEC time (epoch seconds with an optional fraction, as a JSON
// number or a numeric string) into RFC 3339 with nanoseconds. Plain decimals convert
// exactly (a float64 would put 1700000000.123 some 100ns off); exponent forms go
// through a float.
func epochTime(raw []byte) (string, error) {
	s := string(raw)
	if s[0] == '"' {
		var err error
		if s, err = strconv.Unquote(s); err != nil {
			return "", errors.New(`"time" is not a valid string`)
		}
		s = strings.TrimSpace(s)
	}
	bad := fmt.Errorf(`"time" is %.40q, want epoch seconds such as 1700000000.123`, s)
	ns, ok := decimalNanos(s)
	if !ok {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) {
			return "", bad
		}
		if f < 0 || f > maxEpoch {
			return "", fmt.Errorf(`"time" %.40s is out of range`, s)
		}
		ns = int64(f * 1e9)
	}
	if ns < 0 || ns/1e9 > maxEpoch {
		return "", fmt.Errorf(`"time" %.40s is out of range`, s)
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano), nil
}

// decimalNanos converts "123" or "123.456" (seconds) to nanoseconds; digits below a
// nanosecond are dropped. It reports false for any other form and for more than 10
// integer digits.
func decimalNanos(s string) (int64, bool) {
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" || len(intPart) > 10 || !allDigits(intPart) || !allDigits(frac) {
		return 0, false
	}
	sec, _ := strconv.ParseInt(intPart, 10, 64)
	if sec > maxEpoch {
		return 0, false
	}
	var fr int64
	for i := 0; i < 9; i++ {
		fr *= 10
		if i < len(frac) {
			fr += int64(frac[i] - '0')
		}
	}
	return sec*1e9 + fr, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// flatFields checks that fields is a JSON object whose values are not objects, as
// Splunk requires of indexed fields.
func flatFields(f []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(f, &m); err != nil {
		return errors.New(`"fields" must be a JSON object`)
	}
	for k, v := range m {
		if len(v) > 0 && v[0] == '{' {
			return fmt.Errorf(`"fields" member %.60q is an object; indexed fields must be flat`, k)
		}
	}
	return nil
}

// kind names the Go type of a field as the JSON type it wants.
func kind(goType string) string {
	switch goType {
	case "string", "*string":
		return "a string"
	}
	return goType
}
