package syslogparse

// Helpers for TestConformance: locating /work/shared/conformance, running one input
// through a parser, and comparing peer values with ours after normalisation. The same
// helpers live in nginxparse and syslogparse (test files cannot be shared across
// packages without a test-only package).

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

// conformanceDir returns the shared conformance folder: ../shared/conformance next to
// the directory holding go.mod. It fails the test when the folder is absent.
func conformanceDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("conformance: go.mod not found above the package directory")
		}
		dir = parent
	}
	c := filepath.Join(dir, "..", "shared", "conformance")
	if _, err := os.Stat(filepath.Join(c, "index.json")); err != nil {
		t.Fatalf("conformance: shared fixtures not found at %s: %v", c, err)
	}
	return c
}

// outcome is what our parser made of one peer input.
type outcome struct {
	fields map[string]any // flattened dotted keys of the first event
	time   time.Time
	events int
	err    error // whole-record error, or the first Reject reason
}

type captureEmitter struct {
	enc    event.Encoder
	docs   [][]byte
	times  []time.Time
	reject error
}

func (c *captureEmitter) Emit(e *event.Event) error {
	c.docs = append(c.docs, c.enc.Append(nil, e))
	c.times = append(c.times, e.Time)
	return nil
}
func (c *captureEmitter) Reject(_ []byte, reason error) {
	if c.reject == nil {
		c.reject = reason
	}
}
func (c *captureEmitter) Skip(string) {}

func runOne(p parse.Parser, input []byte) outcome {
	var c captureEmitter
	err := p.Parse(input, &c)
	if err == nil {
		err = c.reject
	}
	o := outcome{err: err, events: len(c.docs), fields: map[string]any{}}
	if len(c.docs) > 0 {
		var v map[string]any
		if jerr := json.Unmarshal(c.docs[0], &v); jerr != nil {
			o.err = fmt.Errorf("invalid JSON from parser: %v", jerr)
			return o
		}
		flatten("", v, o.fields)
		o.time = c.times[0]
	}
	if err == nil && len(c.docs) == 0 {
		o.err = errors.New("no event")
	}
	return o
}

// flatten turns nested objects into dotted keys; arrays stay values.
func flatten(prefix string, v any, out map[string]any) {
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
		flatten(key, sub, out)
	}
}

// caseInput returns the exact bytes of a table case.
func caseInput(t testing.TB, c map[string]any) []byte {
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

// norm renders a JSON value for comparison: numbers and strings compare by text,
// arrays as sorted sets, objects by their JSON.
func norm(v any) string {
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
			parts[i] = norm(e)
		}
		sort.Strings(parts)
		return "[" + strings.Join(parts, ",") + "]"
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// sameTime compares a peer timestamp string with ours as instants.
func sameTime(want string, got time.Time) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
		if w, err := time.Parse(layout, want); err == nil {
			return w.Equal(got)
		}
	}
	return false
}

// tally counts field comparisons for one peer file.
type tally struct {
	equal, different, missing, allowed, rejectsOK, rejectsMissed int
	notes                                                        []string
}

func (s *tally) note(format string, args ...any) {
	if len(s.notes) < 40 {
		s.notes = append(s.notes, fmt.Sprintf(format, args...))
	}
}

func (s *tally) comparable() int { return s.equal + s.different + s.missing }

func readJSON(t testing.TB, path string) map[string]any {
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

// ignored reports whether key matches one of the peer's ignore_fields (a trailing
// ".*" matches the subtree).
func ignored(key string, ignore []any) bool {
	for _, p := range ignore {
		s, _ := p.(string)
		if s == key || (strings.HasSuffix(s, ".*") && strings.HasPrefix(key, strings.TrimSuffix(s, "*"))) {
			return true
		}
	}
	return false
}
