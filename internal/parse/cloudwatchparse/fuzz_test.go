package cloudwatchparse

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// FuzzParse checks that no input makes the parser, with or without an inner format,
// panic or emit invalid JSON. It is seeded from the golden inputs and the shared
// conformance fixtures.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "input.log"))
	inner, _ := filepath.Glob(filepath.Join("testdata", "inner", "*", "input.log"))
	seeds = append(seeds, inner...)
	if dir := sharedDirOrEmpty(); dir != "" {
		more, _ := filepath.Glob(filepath.Join(dir, "conformance", "cloudwatch_subscription", "*"))
		seeds = append(seeds, more...)
	}
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		// Large seeds make the fuzzer spend its time minimising.
		if err == nil && len(b) <= 16<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := NewConfig()
		cfg.MaxDecompressedBytes = 1 << 20
		innerCfg := *cfg
		innerCfg.MessageFormat = "cloudtrail"
		ip, err := NewFormat(lookup).New(&innerCfg)
		if err != nil {
			t.Fatal(err)
		}
		var c parsetest.Collector
		for _, p := range []parse.Parser{New(cfg, nil), ip} {
			for range 2 { // twice, to exercise buffer reuse
				_ = p.Parse(in, &c)
			}
		}
		for _, d := range c.Docs {
			if !json.Valid(d) {
				t.Fatalf("invalid JSON document: %s", d)
			}
		}
	})
}

func sharedDirOrEmpty() string {
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
