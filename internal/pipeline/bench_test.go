package pipeline_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// counterValue sums a counter family's samples whose labels include all of want.
func counterValue(t testing.TB, p *pipeline.Pipeline, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := p.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, want) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func gaugeValue(t testing.TB, p *pipeline.Pipeline, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := p.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, want) {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// BenchmarkHTTPToArchive measures the whole embedded pipeline on loopback: NDJSON
// POSTs of 1,000 web-log-like events from 4 concurrent clients, stored with
// sync-always, processed to ECS and archived as gzip NDJSON. An iteration is one
// request; the figures are events and MiB of request body per second, end to end
// (the clock stops when the archive has acknowledged every event).
func BenchmarkHTTPToArchive(b *testing.B) {
	dir := b.TempDir()
	cfg := benchConfig(b, dir)
	p, base := startB(b, cfg)
	const perReq = 1000
	var body bytes.Buffer
	for i := range perReq {
		fmt.Fprintf(&body, `{"@timestamp":"2026-11-25T10:00:%02d.%06dZ","source":{"ip":"10.1.%d.%d","port":%d},"http":{"request":{"method":"GET"},"response":{"status_code":200,"body":{"bytes":%d}}},"url":{"original":"/api/v1/items/%d?page=2"},"user_agent":{"original":"Mozilla/5.0 (X11; Linux x86_64) Vigil-bench"},"message":"GET /api/v1/items/%d 200"}`+"\n",
			i%60, i, i%256, (i*7)%256, 40000+i%20000, 512+i, i, i)
	}
	payload := body.Bytes()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	b.SetParallelism(2) // 2 × GOMAXPROCS clients
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(base+"/v1/events/bench", "application/x-ndjson", bytes.NewReader(payload))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	want := float64(b.N * perReq)
	testutil.Eventually(b, 5*time.Minute, "every event archived", func() bool {
		return counterValue(b, p, "vigil_sent_events_total", map[string]string{"kind": "sink", "component": "archive"}) >= want
	})
	b.StopTimer()
	elapsed := b.Elapsed().Seconds()
	b.ReportMetric(want/elapsed, "events/s")
}

func benchConfig(b *testing.B, dir string) *config.Config {
	b.Helper()
	cfg := testConfig(b, dir, func(c *config.Config, h *httpsource.Config, a *archivesink.Config) {
		a.MaxAge = 500 * time.Millisecond
		h.MaxBodyBytes = 64 << 20
	})
	return cfg
}

func startB(b *testing.B, cfg *config.Config) (*pipeline.Pipeline, string) {
	b.Helper()
	p, err := pipeline.New(cfg, pipeline.Options{Log: discardLogger(), Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Stop(b.Context()) })
	return p, "http://" + p.Sources()["web"].(*httpsource.Source).Addr()
}
