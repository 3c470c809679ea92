package threshold

import (
	"math"
	"testing"

	"github.com/vigil-sec/vigil/internal/wire"
)

// FuzzSample feeds arbitrary bytes to the sample decoder and to the framing of an
// aggregation message: neither may panic, and a decoded sample encodes back to the
// same bytes.
func FuzzSample(f *testing.F) {
	f.Add(appendSample(nil, &sample{t: 1, id: "x", group: []string{"a"}, nums: []float64{2.5}, strs: []string{"22"}, has: []bool{true}}))
	f.Add(appendSample(nil, &sample{t: -1, nums: []float64{math.NaN()}, strs: []string{""}, has: []bool{false}}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s sample
		if err := decodeSample(b, &s); err == nil {
			var again sample
			if err := decodeSample(appendSample(nil, &s), &again); err != nil || again.t != s.t || again.id != s.id ||
				len(again.group) != len(s.group) || len(again.nums) != len(s.nums) || len(again.strs) != len(s.strs) {
				t.Fatalf("round trip: %+v -> %+v (%v)", s, again, err)
			}
		}
		_ = wire.ReadAgg(b, func(x []byte) error { return decodeSample(x, &s) })
	})
}
