package conformancetest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/event"
)

// AddFuzzSeeds adds every line of the package's golden inputs (testdata/*/input.log)
// and of the shared conformance inputs (<format>/*.log for each format, when the
// shared folder is present) to f's corpus.
func AddFuzzSeeds(f *testing.F, formats ...string) {
	f.Helper()
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*", "input.log"))
	for _, format := range formats {
		if dir := SharedDir(format); dir != "" {
			more, _ := filepath.Glob(filepath.Join(dir, "*.log"))
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
}

// SharedDir returns the shared conformance folder of format, or "" when it is absent
// (a fuzz corpus then comes from testdata only).
func SharedDir(format string) string {
	dir, err := filepath.Abs(".")
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

// JSONChecker is a parse.Emitter for fuzzing: it encodes every event and keeps the
// first encoding that is not valid JSON in Bad.
type JSONChecker struct {
	enc event.Encoder
	buf []byte
	Bad []byte
}

// Emit encodes e and checks the result.
func (c *JSONChecker) Emit(e *event.Event) error {
	c.buf = c.enc.Append(c.buf[:0], e)
	if !json.Valid(c.buf) && c.Bad == nil {
		c.Bad = bytes.Clone(c.buf)
	}
	return nil
}

// Reject does nothing.
func (c *JSONChecker) Reject([]byte, error) {}

// Skip does nothing.
func (c *JSONChecker) Skip(string) {}
