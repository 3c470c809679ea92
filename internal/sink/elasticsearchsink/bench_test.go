package elasticsearchsink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
)

// BenchmarkSink measures framing, compression and the HTTP round trip into a
// minimal local _bulk server that reads the body and answers success.
func BenchmarkSink(b *testing.B) {
	for _, compression := range []string{"gzip", "none"} {
		b.Run(compression, func(b *testing.B) { benchSink(b, compression) })
	}
}

func benchSink(b *testing.B, compression string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"took":1,"errors":false,"items":[]}`)
	}))
	defer srv.Close()
	cfg := NewConfig()
	cfg.URLs = []string{srv.URL}
	cfg.Compression = compression
	cfg.Batch.MaxWait = 5 * time.Millisecond
	s, err := New(cfg, FlavourElasticsearch, component.SinkDeps{Name: "bench", Log: slog.New(slog.DiscardHandler),
		Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	// Realistic ECS documents of about 600 bytes, 500 per batch (one stream message).
	const perBatch = 500
	var docs bytes.Buffer
	for i := range perBatch {
		fmt.Fprintf(&docs, `{"@timestamp":"2026-03-04T05:06:07.%09dZ","agent":{"type":"vigil","version":"1.0"},`+
			`"event":{"dataset":"aws.alb","id":"AbCdEfGhIjKlMn%06d","ingested":"2026-03-04T05:06:08Z","kind":"event",`+
			`"original":"https 2026-03-04T05:06:07.123456Z app/my-lb/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57"},`+
			`"http":{"request":{"method":"GET"},"response":{"status_code":200}},"source":{"ip":"192.168.131.39","port":2817},`+
			`"url":{"original":"https://www.example.com:443/path/%d"},"user_agent":{"original":"curl/7.46.0"}}`+"\n", i, i, i)
	}
	raw := docs.Bytes()
	var done atomic.Int64
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		batch := component.NewBatch("aws.alb", uint64(i), time.Now(), raw, perBatch, func(err error) {
			if err != nil {
				b.Error(err)
			}
			done.Add(1)
		})
		if err := s.Consume(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if done.Load() != int64(b.N) {
		b.Fatalf("%d of %d batches acknowledged", done.Load(), b.N)
	}
	b.ReportMetric(float64(b.N*perBatch)/elapsed.Seconds(), "events/s")
}
