package archivesink_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
)

// BenchmarkConsume measures the archive's own cost per events batch (compress,
// write, rotate with fsync every 64 MiB) for gzip and zstd at level 1, the default:
// an iteration is one ~900 KiB batch of ECS syslog documents like those processing
// makes. It reports the compressed size as a share of the input (ratio).
func BenchmarkConsume(b *testing.B) {
	// Four different batches, cycled: zstd's 1 MiB window must not find the same
	// batch again right behind it.
	var batches [4][]byte
	n := 0
	rng := rand.New(rand.NewPCG(1, 2)) // numbers that vary as in real logs, not a counter
	for k := range batches {
		for docs := batches[k]; len(docs) < 900<<10; batches[k] = docs {
			r := func(k int) int { return rng.IntN(k) }
			docs = fmt.Appendf(docs, `{"@timestamp":"2026-12-07T10:00:%02d.%06dZ","agent":{"name":"vigil-1","type":"vigil","version":"0.9.0"},"ecs":{"version":"8.17.0"},"event":{"dataset":"syslog","id":"1765101600000000000:%d:%d","ingested":"2026-12-07T10:00:01.123456Z","original":"<34>1 2026-12-07T10:00:%02d.%06dZ host%d.example.com sshd %d ID47 - Failed password for user%d from 10.0.%d.%d port %d ssh2"},"host":{"hostname":"host%d.example.com"},"log":{"syslog":{"facility":{"code":4},"priority":34,"severity":{"code":2}}},"message":"Failed password for user%d from 10.0.%d.%d port %d ssh2","process":{"name":"sshd","pid":%d}}`+"\n",
				r(60), r(1e6), r(1e6), r(1000), r(60), r(1e6), r(50), r(32768), r(1e5), r(256), r(256), r(65536), r(50), r(1e5), r(256), r(256), r(65536), r(32768))
			if k == 0 {
				n++
			}
		}
	}
	docs := batches[0]
	for _, comp := range []string{"gzip", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			dir := b.TempDir()
			cfg := archivesink.NewConfig()
			cfg.Path = dir
			cfg.MaxAge = time.Hour
			cfg.Compression = comp
			s := archivesink.New(cfg, component.SinkDeps{Name: "bench", Log: slog.New(slog.DiscardHandler),
				Metrics: component.NewMetrics(prometheus.NewRegistry())})
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(docs)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// The sink owns Docs after Consume: hand it a copy, as the stream would.
				batch := component.NewBatch("syslog", uint64(i+1), time.Now(), append([]byte(nil), batches[i%4]...), n, func(error) {})
				batch.Epoch = 1
				if err := s.Consume(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			var size int64
			_ = filepath.Walk(filepath.Join(dir, "syslog"), func(_ string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					size += fi.Size()
				}
				return nil
			})
			b.ReportMetric(float64(size)/float64(int64(b.N)*int64(len(docs))), "ratio")
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
