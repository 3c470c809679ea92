// Package alert holds what the alert sinks (slack, webhook) share: reading fields of
// an alert document, the per-sink rate limit, and suppression of repeated alerts.
//
// An alert is an ECS document with event.kind "alert" and event.dataset
// "vigil.alert", carrying rule.id/name/author/description/reference,
// event.severity, tags and the fields of the matching event. Its event.id is
// deterministic, so a receiver recognises an alert delivered twice (after a crash,
// or a retry whose answer was lost) by it.
package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Doc is one decoded alert document.
type Doc struct {
	m map[string]any
}

// Decode decodes one JSON document.
func Decode(doc []byte) (Doc, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return Doc{}, fmt.Errorf("alert is not a JSON object: %v", err)
	}
	if m == nil {
		return Doc{}, errors.New("alert is not a JSON object: null")
	}
	return Doc{m: m}, nil
}

// Field returns the value at a dotted path as text, and whether it is present. It
// finds both nested objects ({"source":{"ip":...}}) and dotted keys
// ({"source.ip":...}). Arrays of scalars are joined with ", "; objects are given
// as JSON.
func (d Doc) Field(path string) (string, bool) {
	v, ok := lookup(d.m, strings.Split(path, "."))
	if !ok || v == nil {
		return "", false
	}
	return text(v), true
}

func lookup(m map[string]any, parts []string) (any, bool) {
	// The longest dotted key first: "source.ip" may be a key of its own.
	for i := len(parts); i >= 1; i-- {
		v, ok := m[strings.Join(parts[:i], ".")]
		if !ok {
			continue
		}
		if i == len(parts) {
			return v, true
		}
		if sub, ok := v.(map[string]any); ok {
			if r, ok := lookup(sub, parts[i:]); ok {
				return r, true
			}
		}
	}
	return nil, false
}

func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if e != nil {
				parts = append(parts, text(e))
			}
		}
		return strings.Join(parts, ", ")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// ParseRate reads a rate limit written "N/s", "N/m" or "N/h" (N may be a
// fraction: "0.5/s"), or "unlimited".
func ParseRate(s string) (rate.Limit, error) {
	if s == "unlimited" {
		return rate.Inf, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || n <= 0 {
		return 0, fmt.Errorf("want a rate such as 1/s, 30/m or 100/h, or unlimited, got %q", s)
	}
	var per time.Duration
	switch strings.TrimSpace(unit) {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return 0, fmt.Errorf("want a rate such as 1/s, 30/m or 100/h, got unit %q", unit)
	}
	return rate.Limit(n / per.Seconds()), nil
}
