package albparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

func TestGolden(t *testing.T) {
	parsetest.Golden(t, "testdata", parsetest.Lines, func() parse.Parser { return New(Config{}) })
}

// The parser adds fields in key order so the encoder's sort has nothing to do; check
// that keyNames really is in the encoder's order ('.' before any other byte).
func TestKeyOrder(t *testing.T) {
	less := func(a, b string) bool {
		for i := 0; i < len(a) && i < len(b); i++ {
			if a[i] == b[i] {
				continue
			}
			if a[i] == '.' {
				return true
			}
			if b[i] == '.' {
				return false
			}
			return a[i] < b[i]
		}
		return len(a) < len(b)
	}
	for i := 1; i < len(keyNames); i++ {
		if !less(keyNames[i-1], keyNames[i]) {
			t.Errorf("keyNames out of order: %q before %q", keyNames[i-1], keyNames[i])
		}
	}
}
