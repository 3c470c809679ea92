package s3sink_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
)

// BenchmarkSink measures events and bytes per second into the sink, uploads to a
// local versitygw included (objects of 8MiB of documents).
func BenchmarkSink(b *testing.B) {
	for _, tc := range []struct{ name, encoding, compression string }{
		{"ndjson-gzip", "ndjson", "gzip"},
		{"ndjson-zstd", "ndjson", "zstd"},
		{"parquet-zstd", "parquet", "zstd"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := startGateway(b)
			cfg := sinkConfig(g)
			cfg.Encoding, cfg.Compression = tc.encoding, tc.compression
			cfg.MaxBytes = 8 << 20
			s := newSink(b, cfg, "bench")
			a := newAcks()
			const per = 1000
			tmpl := batch("aws.cloudtrail", 1, streamTime, per, a)
			b.SetBytes(int64(len(tmpl.Docs)))
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				// The sink only reads a batch's documents, so one copy serves all.
				bt := component.NewBatch("aws.cloudtrail", uint64(i+1), streamTime, tmpl.Docs, per, a.fn(uint64(i+1)))
				if err := s.Consume(context.Background(), bt); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "events/s")
			if a.acked() != b.N {
				b.Fatalf("%d acknowledged, want %d", a.acked(), b.N)
			}
		})
	}
}
