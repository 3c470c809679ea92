package elasticsearchsink

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
)

// benchRun makes event.ids unique across the benchmark's runs (b.N grows), so
// every document is a new one rather than an overwrite.
var benchRun atomic.Int64

// BenchmarkOpenSearch measures delivery into the package's real OpenSearch node
// (one JVM with a 512 MiB heap, on the same machine as the benchmark): ECS
// documents of about 600 bytes, 500 per batch, bulk requests of 1000 documents,
// gzip, with one and with four requests in flight. Run it with a fixed count, e.g.
// -benchtime=60x (30000 events).
func BenchmarkOpenSearch(b *testing.B) {
	node := shared.get(b)
	// A JVM compiles its hot code in the first seconds of load: warm it up on
	// 20,000 documents, unmeasured, so the first case is not the slower for it.
	// (A benchmark with sub-benchmarks runs its own body once.)
	benchOpenSearch(b, node.URL, 4, 40)
	for _, inFlight := range []int{1, 4} {
		b.Run(fmt.Sprintf("in_flight=%d", inFlight), func(b *testing.B) {
			_, _, _ = node.Do("DELETE", "/bench-*", "")
			benchOpenSearch(b, node.URL, inFlight, b.N)
		})
	}
}

// benchOpenSearch delivers n batches of 500 documents with inFlight bulk requests
// under way at once.
func benchOpenSearch(b *testing.B, url string, inFlight, n int) {
	cfg := NewConfig()
	cfg.URLs = []string{url}
	cfg.Index = "bench-{event.dataset}"
	cfg.InstallTemplates = true
	cfg.MaxInFlight = inFlight
	cfg.Batch.MaxEvents = 1000
	cfg.Batch.MaxWait = 5 * time.Millisecond
	m := component.NewMetrics(prometheus.NewRegistry())
	s, err := New(cfg, FlavourOpenSearch, component.SinkDeps{Name: "bench", Log: slog.New(slog.DiscardHandler), Metrics: m,
		DeadLetter: func(_ context.Context, letters ...component.Letter) error {
			b.Errorf("dead letter: %s", letters[0].Reason)
			return nil
		}})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	run := benchRun.Add(1)
	const perBatch = 500
	batches := make([][]byte, n)
	for i := range n {
		var docs bytes.Buffer
		for j := range perBatch {
			fmt.Fprintf(&docs, `{"@timestamp":"2026-03-04T05:06:07.%09dZ","agent":{"type":"vigil","version":"1.0"},`+
				`"event":{"dataset":"aws.elb_logs","id":"r%d-b%d-e%d","ingested":"2026-03-04T05:06:08Z","kind":"event",`+
				`"original":"https 2026-03-04T05:06:07.123456Z app/my-lb/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57"},`+
				`"http":{"request":{"method":"GET"},"response":{"status_code":200}},"source":{"ip":"192.168.131.39","port":2817},`+
				`"url":{"original":"https://www.example.com:443/path/%d"},"user_agent":{"original":"curl/7.46.0"}}`+"\n", j, run, i, j, j)
		}
		batches[i] = docs.Bytes()
	}
	var done atomic.Int64
	b.SetBytes(int64(len(batches[0])))
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		batch := component.NewBatch("aws.elb_logs", uint64(i), time.Now(), batches[i], perBatch, func(err error) {
			if err != nil {
				b.Error(err)
			}
			done.Add(1)
		})
		if err := s.Consume(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Minute); done.Load() < int64(n) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := s.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	if done.Load() != int64(n) {
		b.Fatalf("%d of %d batches acknowledged", done.Load(), n)
	}
	b.ReportMetric(float64(n*perBatch)/elapsed.Seconds(), "events/s")
}
