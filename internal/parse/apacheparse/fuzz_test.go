package apacheparse

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/event"
)

// seedDirs are the conformance folders whose inputs seed the fuzzer.
var seedDirs = []string{"apache"}

func FuzzParse(f *testing.F) {
	var inputs []string
	inputs, _ = filepath.Glob(filepath.Join("testdata", "*", "input.log"))
	if c := sharedConformance(); c != "" {
		for _, d := range seedDirs {
			more, _ := filepath.Glob(filepath.Join(c, d, "*.log"))
			inputs = append(inputs, more...)
		}
	}
	for _, in := range inputs {
		b, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		p := New()
		var c jsonChecker
		_ = p.Parse(rec, &c)
		if c.bad != nil {
			t.Fatalf("invalid JSON %s from %q", c.bad, rec)
		}
	})
}

type jsonChecker struct {
	enc event.Encoder
	buf []byte
	bad []byte
}

func (c *jsonChecker) Emit(e *event.Event) error {
	c.buf = c.enc.Append(c.buf[:0], e)
	if !json.Valid(c.buf) && c.bad == nil {
		c.bad = bytes.Clone(c.buf)
	}
	return nil
}
func (c *jsonChecker) Reject([]byte, error) {}
func (c *jsonChecker) Skip(string)          {}

// sharedConformance returns ../shared/conformance beside the module root, or "" when
// it is absent (the fuzzer then seeds from testdata only).
func sharedConformance() string {
	dir, err := filepath.Abs(".")
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			c := filepath.Join(dir, "..", "shared", "conformance")
			if _, err := os.Stat(c); err == nil {
				return c
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
