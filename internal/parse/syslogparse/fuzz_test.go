package syslogparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// FuzzParse checks that no line makes the parser panic or emit invalid JSON. The
// corpus is every golden input line plus the shared conformance inputs when present.
func FuzzParse(f *testing.F) {
	conformancetest.AddFuzzSeeds(f, "syslog_rfc3164", "syslog_rfc5424")
	f.Fuzz(func(t *testing.T, rec []byte) {
		p := newTestParser(t)
		var c conformancetest.JSONChecker
		_ = p.Parse(rec, &c)
		if c.Bad != nil {
			t.Fatalf("invalid JSON %s from %q", c.Bad, rec)
		}
	})
}
