// Package parsetest runs parsers over golden case folders: testdata/<case>/input.log and
// the expected want.json next to it, regenerated with `go test -update`.
package parsetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

var update = flag.Bool("update", false, "rewrite the golden want.json files")

// Mode says how a case's input.log is cut into records.
type Mode int

const (
	// Lines makes each line of input.log one record (line formats).
	Lines Mode = iota
	// WholeFile makes the entire input.log one record (CloudTrail files, CloudWatch
	// Logs payloads).
	WholeFile
)

// Result is what a parser made of a case; want.json holds it.
type Result struct {
	Events   []json.RawMessage `json:"events"`
	Rejected []Rejection       `json:"rejected,omitempty"`
	Skipped  map[string]int    `json:"skipped,omitempty"`
}

// Rejection is one record or part the parser refused.
type Rejection struct {
	Line     int    `json:"line,omitempty"` // 1-based, in Lines mode
	Reason   string `json:"reason"`
	Original string `json:"original,omitempty"`
}

// Collector is a parse.Emitter that keeps everything, for tests and benchmarks.
type Collector struct {
	Enc      event.Encoder
	Docs     [][]byte
	Rejected []Rejection
	Skipped  map[string]int
	// Discard, when set, encodes events without keeping them (benchmarks).
	Discard bool
	buf     []byte
}

// Emit implements parse.Emitter. Unless Discard is set, the parser's Time, ID and
// Dataset are written as @timestamp, event.id and event.dataset, the way the pipeline
// writes them, so golden files show them too.
func (c *Collector) Emit(e *event.Event) error {
	if !c.Discard {
		if !e.Time.IsZero() {
			e.Set("@timestamp", event.Time(e.Time))
		}
		if e.ID != "" {
			e.Set("event.id", event.String(e.ID))
		}
		if e.Dataset != "" {
			e.Set("event.dataset", event.String(e.Dataset))
		}
	}
	c.buf = c.Enc.Append(c.buf[:0], e)
	if !c.Discard {
		c.Docs = append(c.Docs, bytes.Clone(c.buf))
	}
	return nil
}

// Reject implements parse.Emitter.
func (c *Collector) Reject(original []byte, reason error) {
	c.Rejected = append(c.Rejected, Rejection{Reason: reason.Error(), Original: string(original)})
}

// Skip implements parse.Emitter.
func (c *Collector) Skip(reason string) {
	if c.Skipped == nil {
		c.Skipped = map[string]int{}
	}
	c.Skipped[reason]++
}

// Run parses input with p in the given mode and returns the result.
func Run(p parse.Parser, input []byte, mode Mode) Result {
	var c Collector
	var res Result
	feed := func(line int, rec []byte) {
		before := len(c.Rejected)
		if err := p.Parse(rec, &c); err != nil {
			c.Rejected = append(c.Rejected, Rejection{Reason: err.Error(), Original: string(rec)})
		}
		for i := before; i < len(c.Rejected); i++ {
			c.Rejected[i].Line = line
		}
	}
	if mode == WholeFile {
		feed(0, input)
	} else {
		sc := bufio.NewScanner(bytes.NewReader(input))
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for n := 1; sc.Scan(); n++ {
			feed(n, sc.Bytes())
		}
	}
	for _, d := range c.Docs {
		res.Events = append(res.Events, json.RawMessage(d))
	}
	if res.Events == nil {
		res.Events = []json.RawMessage{}
	}
	res.Rejected = c.Rejected
	res.Skipped = c.Skipped
	return res
}

// Golden runs every case folder under dir (usually "testdata") through a parser from
// newParser and compares with its want.json, or rewrites want.json with -update. Every
// document must also be valid JSON.
func Golden(t *testing.T, dir string, mode Mode, newParser func() parse.Parser) {
	t.Helper()
	cases, err := filepath.Glob(filepath.Join(dir, "*", "input.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("no golden cases under %s", dir)
	}
	sort.Strings(cases)
	for _, in := range cases {
		caseDir := filepath.Dir(in)
		t.Run(filepath.Base(caseDir), func(t *testing.T) {
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			res := Run(newParser(), input, mode)
			for i, d := range res.Events {
				if !json.Valid(d) {
					t.Fatalf("event %d is not valid JSON: %s", i, d)
				}
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			wantPath := filepath.Join(caseDir, "want.json")
			if *update {
				if err := os.WriteFile(wantPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantPath)
			if errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s missing: run go test -update and review it", wantPath)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(normalize(t, want), normalize(t, got)) {
				t.Errorf("%s differs from the parser's output:\n--- got\n%s", wantPath, got)
			}
		})
	}
}

func normalize(t *testing.T, b []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("golden file: %v", err)
	}
	out, _ := json.Marshal(v)
	return out
}
