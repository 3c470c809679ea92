package cloudfrontparse

// Helpers for TestConformance: locating /work/shared/conformance, flattening JSON
// documents to dotted paths, normalising values and keeping the per-peer score. Kept
// in the package (and repeated in the other AWS parser packages) so that each package
// stays self-contained.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

// conformanceDir finds the shared conformance folder: ../shared/conformance next to
// the directory holding go.mod. The test fails (never skips) when it is absent.
func conformanceDir(t *testing.T, format string) string {
	t.Helper()
	dir, err := os.Getwd()
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
	c := filepath.Join(dir, "..", "shared", "conformance", format)
	if fi, err := os.Stat(c); err != nil || !fi.IsDir() {
		t.Fatalf("conformance: shared fixtures missing at %s: the conformance suite cannot run without them", c)
	}
	return c
}

// parsed is what our parser made of one input line.
type parsed struct {
	docs []map[string]any // flattened
	errs []string         // record errors and rejections
	skip int
}

type capture struct {
	enc  event.Encoder
	out  *parsed
	buf  []byte
	errs *[]string
}

func (c *capture) Emit(e *event.Event) error {
	c.buf = c.enc.Append(c.buf[:0], e)
	var v map[string]any
	if err := json.Unmarshal(c.buf, &v); err != nil {
		return err
	}
	flat := map[string]any{}
	flatten("", v, flat)
	if !e.Time.IsZero() {
		flat["@timestamp"] = e.Time
	}
	if e.ID != "" {
		flat["event.id"] = e.ID // the pipeline writes event.id from e.ID
	}
	c.out.docs = append(c.out.docs, flat)
	return nil
}
func (c *capture) Reject(original []byte, reason error) {
	c.out.errs = append(c.out.errs, reason.Error())
}
func (c *capture) Skip(string) { c.out.skip++ }

// runLine parses one record with p.
func runLine(p parse.Parser, line []byte) parsed {
	var res parsed
	c := &capture{out: &res}
	if err := p.Parse(line, c); err != nil {
		res.errs = append(res.errs, err.Error())
	}
	return res
}

// flatten turns nested objects into dotted keys; arrays stay values.
func flatten(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	for k, vv := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		flatten(key, vv, out)
	}
}

// score counts field comparisons for one peer.
type score struct {
	equal, different, missing, allowed int
	notes                              []string
}

func (s *score) pct() float64 {
	n := s.equal + s.different + s.missing
	if n == 0 {
		return 100
	}
	return 100 * float64(s.equal) / float64(n)
}

func (s *score) note(format string, args ...any) {
	if len(s.notes) < 40 {
		s.notes = append(s.notes, fmt.Sprintf(format, args...))
	}
}

// report logs the score and fails under 95 % equal.
func (s *score) report(t *testing.T, format, peer string) {
	t.Helper()
	t.Logf("%s / %s: %d equal, %d different, %d missing, %d allow-listed: %.1f%% equal",
		format, peer, s.equal, s.different, s.missing, s.allowed, s.pct())
	for _, n := range s.notes {
		t.Logf("  %s", n)
	}
	if s.pct() < 95 {
		t.Errorf("%s / %s: only %.1f%% of comparable fields equal (want >= 95%%)", format, peer, s.pct())
	}
}

// compare scores one expected value against ours. A nil want means the peer has no
// value, which matches our leaving the field out.
func (s *score) compare(where, key string, want, got any, present bool) {
	if want == nil {
		if !present || got == nil {
			s.equal++
			return
		}
		s.different++
		s.note("%s %s: peer null, we have %v", where, key, got)
		return
	}
	if !present {
		if l, ok := want.([]any); ok && len(l) == 0 {
			s.equal++ // an empty list is our absent field
			return
		}
		s.missing++
		s.note("%s %s: missing (peer %v)", where, key, want)
		return
	}
	if sameValue(want, got) {
		s.equal++
		return
	}
	s.different++
	s.note("%s %s: peer %#v, we %#v", where, key, want, got)
}

// sameValue compares after normalisation: numbers by value whatever their JSON type
// (strings holding numbers included), timestamps as instants at the peer's precision,
// lists element-wise.
func sameValue(want, got any) bool {
	if t, ok := got.(time.Time); ok {
		return sameTime(want, t)
	}
	if wt, ok := want.(time.Time); ok {
		if gs, ok := got.(string); ok {
			gt, err := parseAnyTime(gs)
			return err == nil && gt.Equal(wt)
		}
		return false
	}
	switch w := want.(type) {
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	if wf, ok := number(want); ok {
		if gf, ok := number(got); ok {
			return wf == gf
		}
	}
	if ws, ok := want.(string); ok {
		if gs, ok := got.(string); ok {
			if ws == gs {
				return true
			}
			// Timestamps written differently ("...364000Z" vs "...364Z"), or kept by
			// the peer at a lower precision.
			_, err1 := parseAnyTime(ws)
			gt, err2 := parseAnyTime(gs)
			return err1 == nil && err2 == nil && sameTime(ws, gt)
		}
	}
	return fmt.Sprint(want) == fmt.Sprint(got)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil && x != "" && !strings.ContainsAny(x, "xXnN")
	}
	return 0, false
}

func parseAnyTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time: %q", s)
}

// sameTime compares our instant with a peer's, truncating ours to the peer's
// fractional digits (Elastic keeps milliseconds; we keep what the source has).
func sameTime(want any, got time.Time) bool {
	var wt time.Time
	digits := 9
	switch w := want.(type) {
	case string:
		t, err := parseAnyTime(w)
		if err != nil {
			return false
		}
		wt = t
		if i := strings.IndexByte(w, '.'); i >= 0 {
			j := i + 1
			for j < len(w) && w[j] >= '0' && w[j] <= '9' {
				j++
			}
			digits = j - i - 1
		} else {
			digits = 0
		}
	case time.Time:
		wt = w
	default:
		return false
	}
	unit := time.Duration(1)
	for i := digits; i < 9; i++ {
		unit *= 10
	}
	return got.Truncate(unit).Equal(wt.Truncate(unit))
}

// readJSON reads one expected file.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// readLines returns the lines of a fixture input file.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.Split(b, []byte("\n"))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
