package syslogsource_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// panicIntake panics on its first Store, as a bug would, and keeps what it gets
// after that.
type panicIntake struct {
	calls  atomic.Int32
	mu     sync.Mutex
	stored int
}

func (p *panicIntake) Store(_ context.Context, recs component.Records) error {
	if p.calls.Add(1) == 1 {
		panic("a bug while storing")
	}
	p.mu.Lock()
	p.stored += len(recs.Records)
	p.mu.Unlock()
	return nil
}

func (p *panicIntake) DeadLetter(context.Context, ...component.Letter) error { return nil }

// TestConnectionPanicClosesOnlyThatConnection: a panic on one connection is
// recovered and counted; the source keeps serving other connections.
func TestConnectionPanicClosesOnlyThatConnection(t *testing.T) {
	cfg := syslogsource.NewConfig()
	cfg.TCP, cfg.UDP = "127.0.0.1:0", ""
	cfg.BatchMaxWait = 5 * time.Millisecond
	reg := prometheus.NewRegistry()
	in := &panicIntake{}
	src := syslogsource.New(cfg, component.SourceDeps{Name: "syslog", Intake: in, Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(reg)})
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Stop(context.Background()) })
	send := func(msg string) {
		c, err := net.Dial("tcp", src.TCPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "<13>1 - - - - - - %s\n", msg)
	}
	send("first, hits the bug")
	testutil.Eventually(t, 10*time.Second, "the panic counted", func() bool {
		return metricWith(t, reg, "vigil_errors_total", "panic") == 1
	})
	send("second")
	testutil.Eventually(t, 10*time.Second, "the second connection stored", func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.stored == 1
	})
}

func metricWith(t testing.TB, reg *prometheus.Registry, name, reason string) float64 {
	return metricLabel(t, reg, name, "reason", reason)
}

// metricKind sums a counter over the components of one kind.
func metricKind(t testing.TB, reg *prometheus.Registry, name, kind string) float64 {
	return metricLabel(t, reg, name, "kind", kind)
}

func metricLabel(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
