package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/stream"
)

// stubSink counts starts and stops; a sinkRunner around it with nothing else set
// stops cleanly.
type stubSink struct {
	running atomic.Int32
	stops   atomic.Int32
}

func (s *stubSink) Describe() string                                { return "stub" }
func (s *stubSink) Start(context.Context) error                     { return nil }
func (s *stubSink) Consume(context.Context, *component.Batch) error { return nil }
func (s *stubSink) Stop(context.Context) error {
	s.running.Add(-1)
	s.stops.Add(1)
	return nil
}

type leaseHarness struct {
	t   *testing.T
	st  *stream.Stream
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	ttl time.Duration
	mu  sync.Mutex
}

func newLeaseHarness(t *testing.T, ttl time.Duration) *leaseHarness {
	t.Helper()
	b := config.Defaults().Buffer
	st, err := stream.Open(context.Background(), b, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	kv, err := st.JetStream().CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: SinkLeaseBucket, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return &leaseHarness{t: t, st: st, js: st.JetStream(), kv: kv, ttl: ttl}
}

// contender starts a leasedSink for sink "archive" as node with run, building
// runners around snk.
func (h *leaseHarness) contender(node, run string, snk *stubSink) *leasedSink {
	l := &leasedSink{name: "archive", kv: h.kv, nc: h.js.Conn(), ttl: h.ttl, node: node, holder: node + " " + run,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		build: func(context.Context) (*sinkRunner, error) {
			snk.running.Add(1)
			return &sinkRunner{sink: snk, started: true}, nil
		}}
	if err := l.start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.stop(ctx)
	})
	return l
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// One writer at a time: of two nodes one runs the sink; a graceful stop hands the
// lease over at once, without waiting for it to expire.
func TestSinkLeaseOneHolderAndHandOver(t *testing.T) {
	h := newLeaseHarness(t, 2*time.Second)
	var sa, sb stubSink
	a := h.contender("a", "r1", &sa)
	waitFor(t, time.Second, "a runs the sink", func() bool { return a.holding() != nil })
	b := h.contender("b", "r1", &sb)
	// b stands by for several renewals of a's lease.
	time.Sleep(3 * h.ttl)
	if b.holding() != nil || sb.running.Load() != 0 {
		t.Fatal("b runs the sink while a holds the lease")
	}
	if a.holding() == nil || sa.running.Load() != 1 {
		t.Fatalf("a stopped holding the lease it renews (running %d)", sa.running.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.stop(ctx); err != nil {
		t.Fatal(err)
	}
	if sa.running.Load() != 0 || sa.stops.Load() != 1 {
		t.Fatalf("a's sink not stopped once (running %d, stops %d)", sa.running.Load(), sa.stops.Load())
	}
	took := waitFor(t, h.ttl, "b takes the released lease", func() bool { return b.holding() != nil })
	t.Logf("b took over %s after a's graceful stop (lease ttl %s)", took.Round(time.Millisecond), h.ttl)
}

// A holder that died (its key stays until it expires) is taken over only after the
// lease's TTL, never before; a dead earlier run of the same node is taken back at once.
func TestSinkLeaseExpiryAndReclaim(t *testing.T) {
	h := newLeaseHarness(t, 2*time.Second)
	ctx := context.Background()
	if _, err := h.kv.Create(ctx, "archive", []byte("dead r0")); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	var sb stubSink
	b := h.contender("b", "r1", &sb)
	waitFor(t, 3*h.ttl, "b takes the dead holder's lease", func() bool { return b.holding() != nil })
	if since := time.Since(created); since < h.ttl {
		t.Fatalf("b took the lease %s after the dead holder's last renewal; the ttl is %s", since, h.ttl)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.stop(stopCtx); err != nil {
		t.Fatal(err)
	}

	// b's earlier run "died" holding the lease: its next run takes it back at once.
	if _, err := h.kv.Create(ctx, "archive", []byte("b r1")); err != nil {
		t.Fatal(err)
	}
	var sb2 stubSink
	b2 := h.contender("b", "r2", &sb2)
	took := waitFor(t, h.ttl/2, "b's next run takes its own lease back", func() bool { return b2.holding() != nil })
	t.Logf("a restarted node took its own lease back after %s (ttl %s)", took.Round(time.Millisecond), h.ttl)
}

// A holder whose lease is gone (it expired during a pause, or another node holds it)
// stops its sink, and does not run it again while the other holds the lease.
func TestSinkLeaseLostStopsTheSink(t *testing.T) {
	h := newLeaseHarness(t, 2*time.Second)
	var sa stubSink
	a := h.contender("a", "r1", &sa)
	waitFor(t, time.Second, "a runs the sink", func() bool { return a.holding() != nil })
	ctx := context.Background()
	if err := h.kv.Purge(ctx, "archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.kv.Create(ctx, "archive", []byte("other r9")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h.ttl, "a stops its sink", func() bool { return sa.stops.Load() == 1 && a.holding() == nil })
	// Keep the other's lease alive; a must stand by.
	for range 4 {
		time.Sleep(h.ttl / 3)
		e, err := h.kv.Get(ctx, "archive")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.kv.Update(ctx, "archive", []byte("other r9"), e.Revision()); err != nil {
			t.Fatal(err)
		}
		if a.holding() != nil || sa.running.Load() != 0 {
			t.Fatal("a runs the sink again while another node holds the lease")
		}
	}
}

// A sink that does not start fails the node's start when the lease was free, and
// the lease is handed back at once for another node.
func TestSinkLeaseBuildFailureFailsStartAndReleases(t *testing.T) {
	h := newLeaseHarness(t, 2*time.Second)
	l := &leasedSink{name: "archive", kv: h.kv, nc: h.js.Conn(), ttl: h.ttl, node: "a", holder: "a r1",
		log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		build: func(context.Context) (*sinkRunner, error) { return nil, errors.New("no such directory") }}
	if err := l.start(context.Background()); err == nil || !strings.Contains(err.Error(), "no such directory") {
		t.Fatalf("start: %v", err)
	}
	if err := l.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.kv.Create(context.Background(), "archive", []byte("b r1")); err != nil {
		t.Fatalf("the lease was not handed back: %v", err)
	}
}

// A dead holder's lease is taken over after its TTL even when the server does not
// expire the key (the bucket here has no TTL at all): the contender times the
// unchanged revision itself.
func TestSinkLeaseTakenOverWithoutServerExpiry(t *testing.T) {
	h := newLeaseHarness(t, 2*time.Second)
	ctx := context.Background()
	kv, err := h.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "NO_TTL"})
	if err != nil {
		t.Fatal(err)
	}
	h.kv = kv
	if _, err := kv.Create(ctx, "archive", []byte("dead r0")); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	var sb stubSink
	b := h.contender("b", "r1", &sb)
	waitFor(t, 3*h.ttl, "b takes the dead holder's lease", func() bool { return b.holding() != nil })
	if since := time.Since(created); since < h.ttl {
		t.Fatalf("b took the lease %s after the dead holder's last renewal; the ttl is %s", since, h.ttl)
	}
	// A live holder's lease (renewed every third of the TTL) is never taken.
	var sc stubSink
	c := h.contender("c", "r1", &sc)
	time.Sleep(3 * h.ttl)
	if c.holding() != nil || sc.running.Load() != 0 {
		t.Fatal("c took the lease b renews")
	}
}

// A runner whose start fails part-way (here its consumer cannot be declared) leaves
// nothing running, and its stop returns at once. (It used to wait for an acker that
// never started, for ever: a process node that took a lease while the cluster was
// electing a leader never contended again, and missed its shutdown deadline.)
func TestSinkRunnerFailedStartStops(t *testing.T) {
	b := config.Defaults().Buffer
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := stream.Open(context.Background(), b, t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	var snk stubSink
	r := &sinkRunner{st: st, cfg: &config.Sink{Name: "archive", Type: "stub", Inputs: []string{"*"}}, buffer: b,
		sink: &snk, log: discard, dataDir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.start(ctx); err == nil {
		t.Fatal("start succeeded although its consumer could not be declared")
	}
	if n := snk.stops.Load(); n != 1 {
		t.Fatalf("the sink was stopped %d times after the failed start, want 1", n)
	}
	done := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- r.stop(c)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop after a failed start: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stop of a runner whose start failed does not return")
	}
	if n := snk.stops.Load(); n != 1 {
		t.Fatalf("the sink was stopped %d times, want 1", n)
	}
}

// A node whose sink fails to start after it took the lease (as when the consumer
// cannot be declared during an election) hands the lease back and goes on
// contending: here the first start fails, and the node runs the sink on a later
// try. (The stop after the failed start used to wait for ever, and the node never
// contended again.)
func TestSinkLeaseContendsAgainAfterAFailedSinkStart(t *testing.T) {
	h := newLeaseHarness(t, 2*time.Second)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	var snk stubSink
	var builds atomic.Int32
	l := &leasedSink{name: "archive", kv: h.kv, nc: h.js.Conn(), ttl: h.ttl, node: "a", holder: "a r1", log: discard,
		build: func(ctx context.Context) (*sinkRunner, error) {
			r := &sinkRunner{st: h.st, cfg: &config.Sink{Name: "archive", Type: "stub", Inputs: []string{"*"}},
				buffer: config.Defaults().Buffer, sink: &snk, log: discard, dataDir: t.TempDir()}
			if builds.Add(1) == 1 {
				// The consumer cannot be declared.
				failed, cancel := context.WithCancel(ctx)
				cancel()
				ctx = failed
			}
			if err := r.start(ctx); err != nil {
				stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_ = r.stop(stopCtx)
				return nil, err
			}
			return r, nil
		}}
	// Contend as a node does once it is up (its start tried the lease once).
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.run(runCtx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the contender did not stop")
		}
		if r := l.holding(); r != nil {
			_ = r.stop(context.Background())
		}
	}()
	waitFor(t, 5*h.ttl, "the node runs the sink after its first start failed", func() bool { return l.holding() != nil })
	if n := builds.Load(); n < 2 {
		t.Fatalf("%d builds", n)
	}
}

// The lease is renewed while the sink starts: a sink that takes longer than the
// lease's TTL to start (a consumer declared during an election, say) keeps its
// lease, and no other node starts the sink meanwhile.
func TestSinkLeaseRenewedWhileTheSinkStarts(t *testing.T) {
	h := newLeaseHarness(t, 2*time.Second)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	var sa, sb stubSink
	a := &leasedSink{name: "archive", kv: h.kv, nc: h.js.Conn(), ttl: h.ttl, node: "a", holder: "a r1", log: discard,
		build: func(ctx context.Context) (*sinkRunner, error) {
			select {
			case <-time.After(2 * h.ttl):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			sa.running.Add(1)
			return &sinkRunner{sink: &sa, started: true}, nil
		}}
	started := make(chan error, 1)
	go func() { started <- a.start(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.stop(ctx)
	})
	waitFor(t, h.ttl, "a takes the lease", func() bool {
		e, err := readLease(context.Background(), h.js.Conn(), SinkLeaseBucket, "archive")
		return err == nil && e.value == "a r1"
	})
	b := h.contender("b", "r1", &sb)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if a.holding() == nil || sa.running.Load() != 1 {
		t.Fatal("a does not run the sink after its slow start")
	}
	time.Sleep(h.ttl)
	if b.holding() != nil || sb.running.Load() != 0 {
		t.Fatal("b started the sink while a held the lease and started it")
	}
}
