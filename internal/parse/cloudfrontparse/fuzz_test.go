package cloudfrontparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// FuzzParse checks that no line makes the parser panic or emit invalid JSON. The
// corpus is every golden input line plus the shared conformance inputs when present.
func FuzzParse(f *testing.F) {
	conformancetest.AddFuzzSeeds(f, "cloudfront")
	f.Fuzz(func(t *testing.T, line []byte) {
		p := New(Config{})
		var out conformancetest.JSONChecker
		// A header line changes the parser's layout: feed the line as a header too,
		// then parse it as data with that layout.
		_ = p.Parse(line, &out)
		_ = p.Parse(append([]byte("#Fields: "), line...), &out)
		_ = p.Parse(line, &out)
		if out.Bad != nil {
			t.Fatalf("invalid JSON %s from %q", out.Bad, line)
		}
	})
}
