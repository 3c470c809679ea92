package kinesissource

import (
	"fmt"
	"testing"
)

// BenchmarkDeaggregate splits a KPL record of 100 user records of ~200 bytes;
// SetBytes counts the aggregated record.
func BenchmarkDeaggregate(b *testing.B) {
	msg := pb(nil).bytes(1, []byte("pk"))
	for i := range 100 {
		msg = msg.bytes(3, pb(nil).varint(1, 0).bytes(3, fmt.Appendf(nil, `{"n":%d,"message":"%0180d"}`, i, i)))
	}
	rec := aggregate(msg)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if len(deaggregate(rec)) != 100 {
			b.Fatal("want 100 records")
		}
	}
}
