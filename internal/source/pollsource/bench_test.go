package pollsource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/pollsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// BenchmarkPollToIntake measures the poll source following b.N pages of the local
// Okta System Log server (examples/presets/okta-system-log.yaml as written: 1,000
// events a page, Link pagination, de-duplication by uuid, the cursor persisted after
// each page) into the intake stream of an ingest-only node (embedded JetStream,
// sync always), from the node's start to the last event stored.
//
// The preset's 2-minute overlap makes the source remember the uuid of every event
// stored within 2 minutes of the newest, and persist that set with the cursor after
// each page: spacing=100ms (10 events a second) keeps it at ~1,200 ids; spacing=0.3ms
// (3,000 events a second, every event of the run within the overlap) lets it grow
// with the run, and the cost of a page with it.
func BenchmarkPollToIntake(b *testing.B) {
	for _, sp := range []struct {
		name    string
		spacing time.Duration
	}{{"100ms", 100 * time.Millisecond}, {"0.3ms", time.Millisecond / 3}} {
		b.Run("spacing="+sp.name, func(b *testing.B) { benchPoll(b, sp.spacing) })
	}
}

func benchPoll(b *testing.B, spacing time.Duration) {
	const perPage = 1000
	api := testutil.StartOktaSystemLog(b, "okta-test-token")
	evs := make([]testutil.AuditEvent, b.N*perPage)
	t0 := time.Now().Add(-time.Duration(len(evs)) * spacing)
	for i := range evs {
		evs[i] = testutil.AuditEvent{ID: fmt.Sprintf("ev-%07d", i), Time: t0.Add(time.Duration(i) * spacing)}
	}
	api.Add(evs...)
	b.Setenv("OKTA_ORG_URL", api.URL)
	b.Setenv("OKTA_TOKEN", "okta-test-token")
	cfg, err := config.Load(filepath.Join("..", "..", "..", "examples", "presets", "okta-system-log.yaml"), components.Builtin())
	if err != nil {
		b.Fatal(err)
	}
	cfg.DataDir = b.TempDir()
	cfg.Admin.Address = ""
	cfg.Role = config.RoleIngest
	cfg.Sinks = nil
	cfg.Sources[0].Settings.(*pollsource.Config).MaxPages = b.N + 10
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test", Registry: components.Builtin()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	want := float64(b.N * perPage)
	testutil.Eventually(b, 10*time.Minute, "every event stored", func() bool { return sent(b, p) >= want })
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = p.Stop(ctx)
	if got := sent(b, p); got != want {
		b.Fatalf("stored %v events, want %v", got, want)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pages/s")
	b.ReportMetric(want/elapsed.Seconds(), "events/s")
	// The machine is shared: CPU time is steadier than wall time. It includes the
	// local server's, in this process.
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "pages/cpu-s")
}

// sent is what the node's sources stored.
func sent(b *testing.B, p *pipeline.Pipeline) float64 {
	b.Helper()
	families, err := p.Metrics().Gather()
	if err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != "vigil_sent_events_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == "source" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
