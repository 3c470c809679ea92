package vpcflowparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// FuzzParse checks that no line makes the parser panic or emit invalid JSON. The
// corpus is every golden input line plus the shared conformance inputs when present.
func FuzzParse(f *testing.F) {
	conformancetest.AddFuzzSeeds(f, "vpcflow")
	f.Fuzz(func(t *testing.T, line []byte) {
		p := New(Config{})
		var out conformancetest.JSONChecker
		// A header line changes the parser's layout; parse twice so a line that is a
		// header is then parsed with the layout it set.
		_ = p.Parse(line, &out)
		_ = p.Parse(line, &out)
		if out.Bad != nil {
			t.Fatalf("invalid JSON %s from %q", out.Bad, line)
		}
	})
}
