package kinesissource

import (
	"bytes"
	"testing"
)

// FuzzDeaggregate: any record gives at least one user record, each inside the
// input, and never a panic; with a valid checksum the reader still never panics.
func FuzzDeaggregate(f *testing.F) {
	f.Add(sampleAggregated())
	f.Add([]byte(`{"plain":true}`))
	f.Add(kplMagic)
	f.Add(aggregate([]byte{0x1a, 0x05, 0x08}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		for _, in := range [][]byte{rec, aggregate(rec)} {
			got := deaggregate(in)
			if len(got) == 0 {
				t.Fatal("no records")
			}
			total := 0
			for _, r := range got {
				if len(r) > 0 && !bytes.Contains(in, r) {
					t.Fatalf("record %q not in the input", r)
				}
				total += len(r)
			}
			if total > len(in) {
				t.Fatalf("records total %d bytes, input %d", total, len(in))
			}
		}
	})
}
