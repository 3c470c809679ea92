package pipeline_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// panicSink panics on its first batch, as a bug would, and keeps the documents of
// the batches after it.
type panicSink struct {
	calls atomic.Int32
	mu    sync.Mutex
	docs  int
}

func (s *panicSink) Start(context.Context) error { return nil }
func (s *panicSink) Stop(context.Context) error  { return nil }
func (s *panicSink) Describe() string            { return "panics once" }
func (s *panicSink) Consume(_ context.Context, b *component.Batch) error {
	if s.calls.Add(1) == 1 {
		panic("a bug in a sink")
	}
	s.mu.Lock()
	s.docs += b.Count
	s.mu.Unlock()
	b.Done(nil)
	return nil
}

// TestSinkPanicRedelivers: a panic in a sink is recovered and counted, the batch is
// redelivered, and the node and its other sinks go on.
func TestSinkPanicRedelivers(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, func(c *config.Config, _ *httpsource.Config, _ *archivesink.Config) {})
	cfg.Sinks = append(cfg.Sinks, &config.Sink{Name: "buggy", Type: "buggy", Inputs: []string{"*"}, Settings: noKeys{}})
	reg := components.Builtin()
	snk := &panicSink{}
	reg.Sinks["buggy"] = components.SinkFactory{NewConfig: func() config.Component { return noKeys{} },
		New: func(config.Component, component.SinkDeps) (component.Sink, error) { return snk, nil }}
	p, base := startWith(t, cfg, reg)
	if code, out := post(t, base+"/v1/events/app", "application/x-ndjson", "{\"n\":1}\n{\"n\":2}\n"); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	testutil.Eventually(t, 30*time.Second, "the batch delivered after the panic", func() bool {
		snk.mu.Lock()
		defer snk.mu.Unlock()
		return snk.docs == 2
	})
	if n := counterValue(t, p, "vigil_errors_total", map[string]string{"component": "buggy", "reason": "panic"}); n != 1 {
		t.Errorf("panics counted: %v, want 1", n)
	}
	testutil.Eventually(t, 10*time.Second, "the archive got both", func() bool {
		return len(testutil.ArchiveDocs(t, dir+"/archive")) == 2
	})
}
