package conformancetest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

// Outcome is what a parser made of one peer input.
type Outcome struct {
	Fields map[string]any // flattened (FlattenKeepEmpty) dotted keys of the first event
	Time   time.Time      // the first event's e.Time
	Events int
	Err    error // whole-record error, the first Reject reason, or "no event"
}

// Capture is a parse.Emitter that keeps what a parser emits: each event encoded, its
// e.Time, and the first Reject reason.
type Capture struct {
	enc      event.Encoder
	Docs     [][]byte
	Times    []time.Time
	Rejected error // the first Reject reason
}

// Emit keeps e's encoding and time.
func (c *Capture) Emit(e *event.Event) error {
	c.Docs = append(c.Docs, c.enc.Append(nil, e))
	c.Times = append(c.Times, e.Time)
	return nil
}

// Reject keeps the first reason.
func (c *Capture) Reject(_ []byte, reason error) {
	if c.Rejected == nil {
		c.Rejected = reason
	}
}

// Skip does nothing.
func (c *Capture) Skip(string) {}

// RunOne parses one input with p and returns the first event it emitted.
func RunOne(p parse.Parser, input []byte) Outcome {
	var c Capture
	err := p.Parse(input, &c)
	if err == nil {
		err = c.Rejected
	}
	o := Outcome{Err: err, Events: len(c.Docs), Fields: map[string]any{}}
	if len(c.Docs) > 0 {
		var v map[string]any
		if jerr := json.Unmarshal(c.Docs[0], &v); jerr != nil {
			o.Err = fmt.Errorf("invalid JSON from parser: %v", jerr)
			return o
		}
		FlattenKeepEmpty("", v, o.Fields)
		o.Time = c.Times[0]
	}
	if err == nil && len(c.Docs) == 0 {
		o.Err = errors.New("no event")
	}
	return o
}

// FlattenKeepEmpty turns nested objects into dotted keys in out; arrays stay values,
// and so do empty objects below the top level.
func FlattenKeepEmpty(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	if len(m) == 0 && prefix != "" {
		out[prefix] = m
		return
	}
	for k, sub := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		FlattenKeepEmpty(key, sub, out)
	}
}

// CaseInput returns the exact bytes of a table case: its "input_base64" decoded, or
// its "input".
func CaseInput(t testing.TB, c map[string]any) []byte {
	t.Helper()
	if b64, ok := c["input_base64"].(string); ok {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("input_base64: %v", err)
		}
		return b
	}
	s, _ := c["input"].(string)
	return []byte(s)
}

// Norm renders a JSON value for comparison: numbers and strings compare by text,
// arrays as sorted sets, objects by their JSON.
func Norm(v any) string {
	switch x := v.(type) {
	case nil:
		return "<nil>"
	case string:
		return x
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%f", x), ".000000")
	case bool:
		return fmt.Sprint(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = Norm(e)
		}
		sort.Strings(parts)
		return "[" + strings.Join(parts, ",") + "]"
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// SameInstant compares a peer timestamp string (RFC 3339, or with a numeric zone
// without colon) with ours as instants.
func SameInstant(want string, got time.Time) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
		if w, err := time.Parse(layout, want); err == nil {
			return w.Equal(got)
		}
	}
	return false
}

// Tally counts field comparisons, and peer rejections matched or missed, for one
// peer file.
type Tally struct {
	Equal, Different, Missing, Allowed, RejectsOK, RejectsMissed int
	Notes                                                        []string
}

// Note keeps a line for the log, up to 40.
func (s *Tally) Note(format string, args ...any) {
	if len(s.Notes) < 40 {
		s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
	}
}

// Comparable returns the number of fields compared: equal, different or missing.
func (s *Tally) Comparable() int { return s.Equal + s.Different + s.Missing }

// Check counts one comparison of key for input in from peer, noting want and got
// when they differ.
func (s *Tally) Check(peer string, in []byte, key string, ok bool, want, got any) {
	if ok {
		s.Equal++
		return
	}
	s.Different++
	s.Note("%s: %q: %s: want %v, got %v", peer, in, key, want, got)
}

// Mapped returns the name m gives key, or key itself.
func Mapped(m map[string]string, key string) string {
	if t, ok := m[key]; ok {
		return t
	}
	return key
}

// ReadObject reads one expected file holding a JSON object.
func ReadObject(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// Ignored reports whether key matches one of the peer's ignore_fields (a trailing
// ".*" matches the subtree).
func Ignored(key string, ignore []any) bool {
	for _, p := range ignore {
		s, _ := p.(string)
		if s == key || (strings.HasSuffix(s, ".*") && strings.HasPrefix(key, strings.TrimSuffix(s, "*"))) {
			return true
		}
	}
	return false
}
