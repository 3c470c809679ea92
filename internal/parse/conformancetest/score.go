package conformancetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

// Parsed is what a parser made of one input line.
type Parsed struct {
	Docs []map[string]any // the events, encoded and flattened with Flatten
	Errs []string         // record errors and rejections
	Skip int
}

type lineCapture struct {
	enc event.Encoder
	out *Parsed
	buf []byte
}

func (c *lineCapture) Emit(e *event.Event) error {
	c.buf = c.enc.Append(c.buf[:0], e)
	var v map[string]any
	if err := json.Unmarshal(c.buf, &v); err != nil {
		return err
	}
	flat := map[string]any{}
	Flatten("", v, flat)
	if !e.Time.IsZero() {
		flat["@timestamp"] = e.Time
	}
	if e.ID != "" {
		flat["event.id"] = e.ID // the pipeline writes event.id from e.ID
	}
	c.out.Docs = append(c.out.Docs, flat)
	return nil
}
func (c *lineCapture) Reject(original []byte, reason error) {
	c.out.Errs = append(c.out.Errs, reason.Error())
}
func (c *lineCapture) Skip(string) { c.out.Skip++ }

// RunLine parses one record with p. Each event's document carries e.Time as
// "@timestamp" (a time.Time) and e.ID, when set, as "event.id".
func RunLine(p parse.Parser, line []byte) Parsed {
	var res Parsed
	c := &lineCapture{out: &res}
	if err := p.Parse(line, c); err != nil {
		res.Errs = append(res.Errs, err.Error())
	}
	return res
}

// Flatten turns nested objects into dotted keys in out; arrays stay values and empty
// objects leave no key.
func Flatten(prefix string, v any, out map[string]any) {
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
		Flatten(key, vv, out)
	}
}

// Score counts field comparisons for one peer.
type Score struct {
	Equal, Different, Missing, Allowed int
	Notes                              []string
}

// Pct returns the share of comparable fields (equal, different or missing) that are
// equal, in percent; 100 when there are none.
func (s *Score) Pct() float64 {
	n := s.Equal + s.Different + s.Missing
	if n == 0 {
		return 100
	}
	return 100 * float64(s.Equal) / float64(n)
}

// Note keeps a line for the report, up to 40.
func (s *Score) Note(format string, args ...any) {
	if len(s.Notes) < 40 {
		s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
	}
}

// Report logs the score and fails under 95 % equal.
func (s *Score) Report(t testing.TB, format, peer string) {
	t.Helper()
	t.Logf("%s / %s: %d equal, %d different, %d missing, %d allow-listed: %.1f%% equal",
		format, peer, s.Equal, s.Different, s.Missing, s.Allowed, s.Pct())
	for _, n := range s.Notes {
		t.Logf("  %s", n)
	}
	if s.Pct() < 95 {
		t.Errorf("%s / %s: only %.1f%% of comparable fields equal (want >= 95%%)", format, peer, s.Pct())
	}
}

// Compare scores one expected value against ours (present says whether we have the
// field). A nil want means the peer has no value, which matches our leaving the field
// out; an empty list matches an absent field.
func (s *Score) Compare(where, key string, want, got any, present bool) {
	if want == nil {
		if !present || got == nil {
			s.Equal++
			return
		}
		s.Different++
		s.Note("%s %s: peer null, we have %v", where, key, got)
		return
	}
	if !present {
		if l, ok := want.([]any); ok && len(l) == 0 {
			s.Equal++ // an empty list is our absent field
			return
		}
		s.Missing++
		s.Note("%s %s: missing (peer %v)", where, key, want)
		return
	}
	if SameValue(want, got) {
		s.Equal++
		return
	}
	s.Different++
	s.Note("%s %s: peer %#v, we %#v", where, key, want, got)
}

// SameValue compares after normalisation: numbers by value whatever their JSON type
// (strings holding numbers included), timestamps as instants at the peer's precision,
// lists element-wise.
func SameValue(want, got any) bool {
	if t, ok := got.(time.Time); ok {
		return sameTimeAtPrecision(want, t)
	}
	if wt, ok := want.(time.Time); ok {
		if gs, ok := got.(string); ok {
			gt, err := ParseAnyTime(gs)
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
			if !SameValue(w[i], g[i]) {
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
			_, err1 := ParseAnyTime(ws)
			gt, err2 := ParseAnyTime(gs)
			return err1 == nil && err2 == nil && sameTimeAtPrecision(ws, gt)
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

// ParseAnyTime parses RFC 3339 times and the same without a zone (taken as UTC).
func ParseAnyTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time: %q", s)
}

// sameTimeAtPrecision compares our instant with a peer's, truncating ours to the
// peer's fractional digits (Elastic keeps milliseconds; we keep what the source has).
func sameTimeAtPrecision(want any, got time.Time) bool {
	var wt time.Time
	digits := 9
	switch w := want.(type) {
	case string:
		t, err := ParseAnyTime(w)
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

// ReadJSON decodes one expected file into v.
func ReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// ReadLines returns the lines of a fixture input file.
func ReadLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.Split(b, []byte("\n"))
}

// SortedKeys returns the keys of m in order.
func SortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
