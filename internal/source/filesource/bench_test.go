package filesource_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/filesource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// BenchmarkFileBacklog measures catching up on a large Apache access log (b.N lines,
// written before the clock starts) into the intake stream on an ingest-only node
// (embedded JetStream, sync always; a checkpoint naming each batch fsynced before it
// is stored, reading and checkpointing overlapping the stores): MB/s and lines/s
// stored.
func BenchmarkFileBacklog(b *testing.B) {
	dir := b.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		b.Fatal(err)
	}
	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Admin.Address = ""
	cfg.Role = config.RoleIngest
	fc := filesource.NewConfig()
	fc.Paths = []string{filepath.Join(logs, "access.log*")}
	fc.StartAt = "beginning"
	fc.ScanInterval = 10 * time.Millisecond
	opts, _ := reg.FormatConfig("apache")
	cfg.Sources = []*config.Source{{Name: "apache", Type: "file", Format: "apache", FormatOptions: opts, Settings: fc}}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.DiscardHandler), Version: "bench", Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})

	line := `203.0.113.%03d - frank [10/Oct/2026:13:55:36 -0700] "GET /apache_pb.gif?id=%08d HTTP/1.1" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"` + "\n"
	size := len(fmt.Sprintf(line, 0, 0))
	staged := filepath.Join(dir, "access.log")
	f, err := os.Create(staged)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range b.N {
		fmt.Fprintf(w, line, i%256, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	// The backlog appears at once, as after an outage.
	if err := os.Rename(staged, filepath.Join(logs, "access.log")); err != nil {
		b.Fatal(err)
	}
	testutil.Eventually(b, 10*time.Minute, "every line stored", func() bool {
		return sentBySources(b, p.Metrics()) >= float64(b.N)
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
}

func sentBySources(t testing.TB, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "vigil_sent_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == "source" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
