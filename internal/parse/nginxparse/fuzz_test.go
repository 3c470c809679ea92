package nginxparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// FuzzParse checks that no line makes the parser panic or emit invalid JSON. The
// corpus is every golden input line plus the shared conformance inputs when present.
func FuzzParse(f *testing.F) {
	conformancetest.AddFuzzSeeds(f, "nginx")
	f.Fuzz(func(t *testing.T, rec []byte) {
		p := New()
		var c conformancetest.JSONChecker
		_ = p.Parse(rec, &c)
		if c.Bad != nil {
			t.Fatalf("invalid JSON %s from %q", c.Bad, rec)
		}
	})
}
