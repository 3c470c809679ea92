package albparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// FuzzParse checks that no line makes the parser panic or emit invalid JSON. The
// corpus is every golden input line plus the shared conformance inputs when present.
func FuzzParse(f *testing.F) {
	conformancetest.AddFuzzSeeds(f, "alb")
	f.Fuzz(func(t *testing.T, line []byte) {
		p := New(Config{Strict: len(line)%2 == 0})
		var out conformancetest.JSONChecker
		_ = p.Parse(line, &out)
		_ = p.Parse(line, &out) // a reused parser must behave the same
		if out.Bad != nil {
			t.Fatalf("invalid JSON %s from %q", out.Bad, line)
		}
	})
}
