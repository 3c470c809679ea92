package syslogsource_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestConnectionsStayInMemoryBudget is the global memory budget's guarantee
// (docs/performance.md#memory): 100 TCP connections sending at once, each faster
// than the node can store, into a whole node at its default limits.memory; the
// memory the Go runtime holds from the OS (what GOMEMLIMIT bounds: every class of
// runtime/metrics' /memory/classes/total:bytes but the heap released back) never
// exceeds the budget, sampled every few milliseconds, and every line is archived.
// Not timed: the budget holds however slowly the machine runs.
func TestConnectionsStayInMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 100 MB over 100 connections")
	}
	// The smallest budget docs/performance.md recommends, below the default (384 MiB):
	// the tighter the budget, the more the test proves.
	const budget = 256 << 20
	cfg := testConfig(t, t.TempDir(), func(c *config.Config, s *syslogsource.Config) {
		s.UDP = ""
		c.Limits.Memory = budget
	})
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	if _, from := pipeline.SetMemoryLimit(cfg.Limits); from != "limits.memory" {
		t.Skipf("GOMEMLIMIT is set in the environment; the test checks the limit limits.memory sets")
	}
	debug.FreeOSMemory() // start from what the test binary itself needs
	p, src := start(t, cfg)

	const conns, perConn = 100, 2500
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	var peak int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			held := int64(samples[0].Value.Uint64() - samples[1].Value.Uint64())
			peak = max(peak, held)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	pad := strings.Repeat("x", 240)
	var senders sync.WaitGroup
	for c := range conns {
		senders.Go(func() {
			conn, err := net.Dial("tcp", src.TCPAddr())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			w := bufio.NewWriterSize(conn, 64<<10)
			for i := range perConn {
				fmt.Fprintf(w, "<34>1 2026-12-07T10:00:00.%06dZ host%d.example.com sshd %d ID47 [origin ip=\"10.0.%d.%d\"] Failed password for user%d %s\n",
					i, c, 1000+c, c, i%256, i, pad)
			}
			if err := w.Flush(); err != nil {
				t.Error(err)
			}
		})
	}
	senders.Wait()
	testutil.Eventually(t, 10*time.Minute, "every line archived", func() bool {
		return metricKind(t, p.Metrics(), "vigil_sent_events_total", "sink") >= conns*perConn
	})
	close(stop)
	sampler.Wait()
	if got := metricKind(t, p.Metrics(), "vigil_sent_events_total", "sink"); got != conns*perConn {
		t.Errorf("archived %v events, want %d", got, conns*perConn)
	}
	t.Logf("peak memory held from the OS: %d MiB of a %d MiB budget", peak>>20, budget>>20)
	if peak > budget {
		t.Errorf("peak memory held from the OS %d MiB, over limits.memory %d MiB", peak>>20, budget>>20)
	}
}
