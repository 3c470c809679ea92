package albparse

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/event"
)

// FuzzParse checks that no line makes the parser panic or emit invalid JSON. The
// corpus is every golden input line plus the shared conformance inputs when present.
func FuzzParse(f *testing.F) {
	seed := func(path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			f.Add(line)
		}
	}
	golden, _ := filepath.Glob(filepath.Join("testdata", "*", "input.log"))
	for _, p := range golden {
		seed(p)
	}
	if dir := sharedDir("alb"); dir != "" {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, p := range logs {
			seed(p)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		p := New(Config{Strict: len(line)%2 == 0})
		var out fuzzEmitter
		_ = p.Parse(line, &out)
		_ = p.Parse(line, &out) // a reused parser must behave the same
	})
}

type fuzzEmitter struct {
	enc event.Encoder
	buf []byte
}

func (f *fuzzEmitter) Emit(e *event.Event) error {
	f.buf = f.enc.Append(f.buf[:0], e)
	if !json.Valid(f.buf) {
		panic("invalid JSON: " + string(f.buf))
	}
	return nil
}
func (f *fuzzEmitter) Reject([]byte, error) {}
func (f *fuzzEmitter) Skip(string)          {}

// sharedDir returns the shared conformance folder of format, or "" when absent (the
// fuzz corpus then comes from testdata only).
func sharedDir(format string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			c := filepath.Join(dir, "..", "shared", "conformance", format)
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
