package cloudtrailparse

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// FuzzParse checks that no input makes the parser panic or emit invalid JSON. It is
// seeded from the golden inputs and the shared conformance and Sigma samples.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "input.log"))
	if dir := sharedDirFromFuzz(); dir != "" {
		more, _ := filepath.Glob(filepath.Join(dir, "conformance", "cloudtrail", "*"))
		seeds = append(seeds, more...)
		samples, _ := filepath.Glob(filepath.Join(dir, "sigma", "cloudtrail-samples", "*", "*.json"))
		seeds = append(seeds, samples...)
	}
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		// Large seeds make the fuzzer spend its time minimising; small ones cover the
		// same code.
		if err != nil || len(b) > 16<<10 {
			continue
		}
		f.Add(b)
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(b)
			zw.Close()
			f.Add(buf.Bytes())
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := NewConfig()
		cfg.MaxDecompressedBytes = 1 << 20
		p := New(cfg)
		var c parsetest.Collector
		// Twice on the same parser, to exercise buffer reuse.
		for range 2 {
			_ = p.Parse(in, &c)
		}
		for _, d := range c.Docs {
			if !json.Valid(d) {
				t.Fatalf("invalid JSON document: %s", d)
			}
		}
	})
}

func sharedDirFromFuzz() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			shared := filepath.Join(dir, "..", "shared")
			if _, err := os.Stat(shared); err == nil {
				return shared
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
