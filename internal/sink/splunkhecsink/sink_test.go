package splunkhecsink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/testutil"
)

const testToken = "11111111-2222-3333-4444-555555555555"

// harness is a sink under test with its metrics and dead letters.
type harness struct {
	sink    *Sink
	metrics *component.Metrics

	mu      sync.Mutex
	letters []component.Letter
}

func newHarness(t testing.TB, cfg *Config) *harness {
	t.Helper()
	h := &harness{metrics: component.NewMetrics(prometheus.NewRegistry())}
	deps := component.SinkDeps{Name: "splunk", Log: slog.New(slog.DiscardHandler), Metrics: h.metrics,
		DeadLetter: func(_ context.Context, letters ...component.Letter) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, l := range letters {
				l.Original = bytes.Clone(l.Original)
				h.letters = append(h.letters, l)
			}
			return nil
		}}
	if testing.Verbose() {
		deps.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	h.sink = s
	return h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (h *harness) Letters() []component.Letter {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]component.Letter(nil), h.letters...)
}

func (h *harness) counter(v *prometheus.CounterVec, labels ...string) float64 {
	var m dto.Metric
	if err := v.WithLabelValues(append([]string{"sink", "splunk"}, labels...)...).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// outcome records the Done calls of one batch.
type outcome struct {
	mu    sync.Mutex
	calls int
	err   error
	at    time.Time
}

func (o *outcome) done(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	o.err = err
	o.at = time.Now()
}

func (o *outcome) get() (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls, o.err
}

// docs returns n ECS documents of dataset with event.id "<prefix>-<i>" and
// message "<prefix> <i>".
func docs(dataset, prefix string, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"@timestamp":"2026-03-04T05:06:07.123456789Z","event":{"dataset":%q,"id":"%s-%d"},"host":{"name":"web-%d"},"message":"%s %d"}`+"\n",
			dataset, prefix, i, i%3, prefix, i)
	}
	return b.Bytes()
}

func batch(dataset string, seq uint64, d []byte, n int, o *outcome) *component.Batch {
	return component.NewBatch(dataset, seq, time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC), d, n, o.done)
}

func testConfig(f *fakeHEC, ack bool) *Config {
	c := NewConfig()
	c.URL = f.srv.URL
	c.Token = testToken
	c.IndexerAcknowledgement = ack
	c.Batch.MaxWait = 20 * time.Millisecond
	c.Batch.MaxEvents = 100
	c.Ack.PollInterval = 20 * time.Millisecond
	c.Ack.Timeout = 10 * time.Second
	c.Retry = Retry{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	c.RequestTimeout = 5 * time.Second
	return c
}

func waitDone(t *testing.T, o *outcome, what string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, func() bool { n, _ := o.get(); return n > 0 })
	if n, err := o.get(); n != 1 || err != nil {
		t.Fatalf("%s: Done called %d times, last with %v; want once with nil", what, n, err)
	}
}

func (h *harness) checkNoDoubleResolve(t *testing.T) {
	t.Helper()
	if n := h.counter(h.metrics.Errors, "internal_double_resolve"); n != 0 {
		t.Errorf("events resolved twice: %v", n)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestAckHappyPath sends three batches (one spanning requests) with indexer
// acknowledgement: every event arrives once, each batch is done once after its
// acks, and the protocol headers are right.
func TestAckHappyPath(t *testing.T) {
	f := newFakeHEC(testToken, true)
	defer f.close()
	h := newHarness(t, testConfig(f, true))
	var outs [3]outcome
	sizes := []int{10, 250, 1}
	for i, n := range sizes {
		if err := h.sink.Consume(context.Background(), batch("app", uint64(i+1), docs("app", fmt.Sprint("b", i), n), n, &outs[i])); err != nil {
			t.Fatal(err)
		}
	}
	for i := range outs {
		waitDone(t, &outs[i], fmt.Sprintf("batch %d done", i))
	}
	got := countBy(f.events(), "message")
	total := 0
	for i, n := range sizes {
		for k := range n {
			if c := got[fmt.Sprintf("b%d %d", i, k)]; c != 1 {
				t.Errorf("b%d %d stored %d times", i, k, c)
			}
		}
		total += n
	}
	if len(f.events()) != total {
		t.Errorf("stored %d events, want %d", len(f.events()), total)
	}
	if f.polls() == 0 {
		t.Error("no ack polls")
	}
	for _, r := range f.reqs() {
		if r.auth != "Splunk "+testToken || !uuidRE.MatchString(r.channel) || r.channel != h.sink.Channel() || !r.gzip {
			t.Errorf("request headers: auth %q channel %q gzip %v", r.auth, r.channel, r.gzip)
		}
	}
	if n := h.counter(h.metrics.SentEvents); n != float64(total) {
		t.Errorf("sent_events_total %v, want %d", n, total)
	}
	h.checkNoDoubleResolve(t)
}

// TestDelayedAcks holds indexing: the batch must not be done while Splunk says its
// ack is false, however many polls pass, and is done once acks turn true.
func TestDelayedAcks(t *testing.T) {
	f := newFakeHEC(testToken, true)
	defer f.close()
	f.set(func(f *fakeHEC) { f.holdAcks = true })
	h := newHarness(t, testConfig(f, true))
	var o outcome
	if err := h.sink.Consume(context.Background(), batch("app", 1, docs("app", "d", 5), 5, &o)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "several ack polls", func() bool { return f.polls() >= 5 })
	if n, _ := o.get(); n != 0 {
		t.Fatal("batch done before Splunk acknowledged indexing")
	}
	if len(f.events()) != 0 {
		t.Fatal("fake indexed events with acks held")
	}
	released := time.Now()
	f.set(func(f *fakeHEC) { f.holdAcks = false })
	waitDone(t, &o, "done after acks")
	if o.at.Before(released) {
		t.Error("done before the ack was released")
	}
	if len(f.events()) != 5 || len(f.reqs()) != 1 {
		t.Errorf("%d events in %d requests, want 5 in 1 (no resend)", len(f.events()), len(f.reqs()))
	}
	h.checkNoDoubleResolve(t)
}

// TestLostAckResends loses the ack of the first request: after ack.timeout the sink
// sends it again and the batch is done once. When the indexer lost the events too,
// Splunk ends with each event once; when only the ack was lost, it holds them twice
// — the documented at-least-once cost (HEC has no idempotent id).
func TestLostAckResends(t *testing.T) {
	for _, indexed := range []bool{false, true} {
		t.Run(fmt.Sprintf("indexed=%v", indexed), func(t *testing.T) {
			f := newFakeHEC(testToken, true)
			defer f.close()
			f.set(func(f *fakeHEC) { f.loseAcks, f.lostIndexed = 1, indexed })
			cfg := testConfig(f, true)
			cfg.Ack.Timeout = 200 * time.Millisecond
			h := newHarness(t, cfg)
			var o outcome
			if err := h.sink.Consume(context.Background(), batch("app", 1, docs("app", "l", 7), 7, &o)); err != nil {
				t.Fatal(err)
			}
			waitDone(t, &o, "done after resend")
			if n := len(f.reqs()); n != 2 {
				t.Errorf("%d event requests, want 2 (original and resend)", n)
			}
			want := 1
			if indexed {
				want = 2
			}
			for msg, n := range countBy(f.events(), "message") {
				if n != want {
					t.Errorf("%s stored %d times, want %d", msg, n, want)
				}
			}
			if n := h.counter(h.metrics.Errors, "ack_timeout"); n != 1 {
				t.Errorf("ack_timeout errors %v, want 1", n)
			}
			h.checkNoDoubleResolve(t)
		})
	}
}

// TestBusyRetries answers 503 code 9 three times: the sink backs off (growing
// delays) and delivers, dropping nothing.
func TestBusyRetries(t *testing.T) {
	f := newFakeHEC(testToken, true)
	defer f.close()
	f.set(func(f *fakeHEC) { f.busy = 3 })
	cfg := testConfig(f, true)
	cfg.Retry = Retry{Initial: 40 * time.Millisecond, Max: time.Second}
	h := newHarness(t, cfg)
	var o outcome
	if err := h.sink.Consume(context.Background(), batch("app", 1, docs("app", "busy", 20), 20, &o)); err != nil {
		t.Fatal(err)
	}
	waitDone(t, &o, "done after busy")
	reqs := f.reqs()
	if len(reqs) != 4 || reqs[3].status != 200 {
		t.Fatalf("requests %+v, want three 503 then a 200", reqs)
	}
	// Attempt k waits between initial<<k / 2 and initial<<k (jitter).
	for k := 1; k < 4; k++ {
		gap := reqs[k].at.Sub(reqs[k-1].at)
		if min := cfg.Retry.Initial << (k - 1) / 2; gap < min {
			t.Errorf("retry %d after %v, want at least %v", k, gap, min)
		}
	}
	if len(f.events()) != 20 {
		t.Errorf("%d events stored, want 20", len(f.events()))
	}
	if n := h.counter(h.metrics.Errors, "http_503"); n != 3 {
		t.Errorf("http_503 errors %v, want 3", n)
	}
	h.checkNoDoubleResolve(t)
}

// TestInvalidEventDeadLettered rejects two documents with code 6 "Invalid data
// format" (as Splunk does, naming the event): each goes to the DLQ with Splunk's
// text and code and its original bytes; the others are delivered once.
func TestInvalidEventDeadLettered(t *testing.T) {
	f := newFakeHEC(testToken, true)
	defer f.close()
	f.set(func(f *fakeHEC) {
		f.reject = func(ev hecEvent) (int, string, bool) {
			return 6, "Invalid data format", bytes.Contains(ev.Event, []byte(`"bad 3"`)) || bytes.Contains(ev.Event, []byte(`"bad 8"`))
		}
	})
	h := newHarness(t, testConfig(f, true))
	d := docs("app", "bad", 10)
	var o outcome
	if err := h.sink.Consume(context.Background(), batch("app", 1, d, 10, &o)); err != nil {
		t.Fatal(err)
	}
	waitDone(t, &o, "done after rejection")
	letters := h.Letters()
	if len(letters) != 2 {
		t.Fatalf("%d letters, want 2: %+v", len(letters), letters)
	}
	lines := bytes.Split(bytes.TrimSpace(d), []byte("\n"))
	for i, l := range letters {
		want := lines[[]int{3, 8}[i]]
		if l.Stage != "sink" || !bytes.Equal(l.Original, want) || l.Dataset != "app" ||
			!strings.Contains(l.Reason, "Invalid data format") || !strings.Contains(l.Reason, "code 6") {
			t.Errorf("letter %d: %+v", i, l)
		}
		if l.ID != fmt.Sprintf("sink:splunk:bad-%d", []int{3, 8}[i]) {
			t.Errorf("letter ID %q", l.ID)
		}
	}
	got := countBy(f.events(), "message")
	for i := range 10 {
		want := 1
		if i == 3 || i == 8 {
			want = 0
		}
		if got[fmt.Sprintf("bad %d", i)] != want {
			t.Errorf("bad %d stored %d times, want %d", i, got[fmt.Sprintf("bad %d", i)], want)
		}
	}
	if n := h.counter(h.metrics.DeadLettered, "sink"); n != 2 {
		t.Errorf("dead_lettered_total %v, want 2", n)
	}
	h.checkNoDoubleResolve(t)
}

// TestIncorrectIndexDeadLettered sends a dataset mapped to an index the token may
// not write (400 code 7): its events are dead-lettered, another dataset's are
// delivered.
func TestIncorrectIndexDeadLettered(t *testing.T) {
	f := newFakeHEC(testToken, false)
	defer f.close()
	f.set(func(f *fakeHEC) { f.allowedIndexes = map[string]bool{"main": true} })
	cfg := testConfig(f, false)
	cfg.Datasets = map[string]Metadata{"secret.*": {Index: "forbidden"}, "default": {Index: "main"}}
	h := newHarness(t, cfg)
	var o1, o2 outcome
	_ = h.sink.Consume(context.Background(), batch("secret.x", 1, docs("secret.x", "s", 3), 3, &o1))
	_ = h.sink.Consume(context.Background(), batch("open", 2, docs("open", "o", 4), 4, &o2))
	waitDone(t, &o1, "secret batch done")
	waitDone(t, &o2, "open batch done")
	if n := len(h.Letters()); n != 3 {
		t.Fatalf("%d letters, want 3", n)
	}
	if r := h.Letters()[0].Reason; !strings.Contains(r, "Incorrect index (code 7") {
		t.Errorf("reason %q", r)
	}
	if n := len(f.events()); n != 4 {
		t.Errorf("%d events stored, want 4", n)
	}
}

// TestMetadataAndFraming checks the event objects: time from @timestamp with its
// fraction, host from host.name or config, per-dataset metadata by exact key, glob
// and default, and the ECS document embedded byte for byte.
func TestMetadataAndFraming(t *testing.T) {
	f := newFakeHEC(testToken, false)
	defer f.close()
	cfg := testConfig(f, false)
	cfg.Compression = "none"
	cfg.Datasets = map[string]Metadata{
		"aws.cloudtrail": {Sourcetype: "aws:cloudtrail", Index: "security"},
		"aws.*":          {Sourcetype: "aws:generic", Source: "aws"},
		"default":        {Index: "main", Host: ""},
		"fixed.host":     {Host: "collector-1"},
	}
	h := newHarness(t, cfg)
	docs := map[string]string{
		"aws.cloudtrail": `{"@timestamp":"2026-01-02T03:04:05.123456789Z","event":{"dataset":"aws.cloudtrail"},"host":{"name":"ip-10-0-0-1"},"message":"ct \"quoted\" é"}`,
		"aws.vpcflow":    `{"@timestamp":"2026-01-02T03:04:05Z","event":{"dataset":"aws.vpcflow"},"message":"flow"}`,
		"other":          `{"@timestamp":"2026-01-02T03:04:05.5+02:00","event":{"dataset":"other"},"message":"o"}`,
		"fixed.host":     `{"@timestamp":"2026-01-02T03:04:05.100Z","event":{"dataset":"fixed.host"},"host":{"name":"ignored"},"message":"f"}`,
		"no.ts":          `{"event":{"dataset":"no.ts"},"message":"nots"}`,
	}
	var outs []*outcome
	seq := uint64(0)
	for ds, d := range docs {
		seq++
		o := &outcome{}
		outs = append(outs, o)
		_ = h.sink.Consume(context.Background(), batch(ds, seq, []byte(d+"\n"), 1, o))
	}
	for i, o := range outs {
		waitDone(t, o, fmt.Sprint("batch ", i))
	}
	type want struct{ time, host, source, sourcetype, index string }
	wants := map[string]want{
		"ct \"quoted\" é": {"1767323045.123456", "ip-10-0-0-1", "vigil:aws.cloudtrail", "aws:cloudtrail", "security"},
		"flow":            {"1767323045", "", "aws", "aws:generic", "main"},
		"o":               {"1767315845.5", "", "vigil:other", "_json", "main"},
		"f":               {"1767323045.1", "collector-1", "vigil:fixed.host", "_json", "main"},
		"nots":            {"1772600400", "", "vigil:no.ts", "_json", "main"},
	}
	evs := f.events()
	if len(evs) != len(wants) {
		t.Fatalf("%d events, want %d", len(evs), len(wants))
	}
	for _, ev := range evs {
		var m map[string]any
		if err := json.Unmarshal(ev.Event, &m); err != nil {
			t.Fatal(err)
		}
		msg := m["message"].(string)
		w := wants[msg]
		host := ""
		if ev.Host != nil {
			host = *ev.Host
		}
		if string(ev.Time) != w.time || host != w.host || ev.Source != w.source || ev.Sourcetype != w.sourcetype || ev.Index != w.index {
			t.Errorf("%q: time %s host %q source %q sourcetype %q index %q; want %+v", msg, ev.Time, host, ev.Source, ev.Sourcetype, ev.Index, w)
		}
		ds := m["event"].(map[string]any)["dataset"].(string)
		if string(ev.Event) != docs[ds] {
			t.Errorf("event not embedded verbatim:\n got %s\nwant %s", ev.Event, docs[ds])
		}
	}
}

// TestNoAck: without indexer acknowledgement a 200 is delivery and the ack
// endpoint is never asked.
func TestNoAck(t *testing.T) {
	f := newFakeHEC(testToken, false)
	defer f.close()
	h := newHarness(t, testConfig(f, false))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "n", 30), 30, &o))
	waitDone(t, &o, "done")
	if len(f.events()) != 30 || f.polls() != 0 {
		t.Errorf("%d events, %d polls; want 30, 0", len(f.events()), f.polls())
	}
}

// TestAckMissingCountsDelivery: indexer_acknowledgement on but the token has acks
// off (no ackId): the 200 counts, the operator is told, nothing is resent forever.
func TestAckMissingCountsDelivery(t *testing.T) {
	f := newFakeHEC(testToken, false)
	defer f.close()
	h := newHarness(t, testConfig(f, true))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "m", 3), 3, &o))
	waitDone(t, &o, "done")
	if n := h.counter(h.metrics.Errors, "ack_missing"); n != 1 {
		t.Errorf("ack_missing %v, want 1", n)
	}
	if len(f.reqs()) != 1 {
		t.Errorf("%d requests, want 1", len(f.reqs()))
	}
}

// TestBadTokenRetries: a refused token (403 code 4) is retried, never dropped;
// once the token is accepted the events arrive.
func TestBadTokenRetries(t *testing.T) {
	f := newFakeHEC("other-token", true)
	defer f.close()
	h := newHarness(t, testConfig(f, true))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "t", 4), 4, &o))
	testutil.Eventually(t, 10*time.Second, "some refused requests", func() bool { return len(f.reqs()) >= 3 })
	if n, _ := o.get(); n != 0 || len(h.Letters()) != 0 {
		t.Fatal("refused token resolved the batch")
	}
	f.set(func(f *fakeHEC) { f.token = testToken })
	waitDone(t, &o, "done after the token was fixed")
	if len(f.events()) != 4 {
		t.Errorf("%d events, want 4", len(f.events()))
	}
}

// TestMaxPendingBounds: with ack.max_pending 2 and acks held, no more than two
// requests await their ack, however many batches come.
func TestMaxPendingBounds(t *testing.T) {
	f := newFakeHEC(testToken, true)
	defer f.close()
	f.set(func(f *fakeHEC) { f.holdAcks = true })
	cfg := testConfig(f, true)
	cfg.Ack.MaxPending = 2
	cfg.Batch.MaxEvents = 5
	h := newHarness(t, cfg)
	outs := make([]outcome, 6)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for i := range outs {
			_ = h.sink.Consume(context.Background(), batch("app", uint64(i+1), docs("app", fmt.Sprint("p", i), 5), 5, &outs[i]))
		}
	}()
	testutil.Eventually(t, 10*time.Second, "two pending acks", func() bool { return f.pendingAcks() == 2 })
	testutil.Eventually(t, 10*time.Second, "more polls", func() bool { return f.polls() >= 5 })
	if n := f.pendingAcks(); n != 2 {
		t.Fatalf("%d pending acks, want 2 (max_pending)", n)
	}
	f.set(func(f *fakeHEC) { f.holdAcks = false })
	<-consumed
	for i := range outs {
		waitDone(t, &outs[i], fmt.Sprint("batch ", i))
	}
	if len(f.events()) != 30 {
		t.Errorf("%d events, want 30", len(f.events()))
	}
}

// TestStopGivesUpUnacked: Stop with acks held past its deadline hands the batch
// back (Done with an error, for redelivery), once, and leaves no goroutine.
func TestStopGivesUpUnacked(t *testing.T) {
	f := newFakeHEC(testToken, true)
	defer f.close()
	f.set(func(f *fakeHEC) { f.holdAcks = true })
	h := newHarness(t, testConfig(f, true))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "s", 3), 3, &o))
	testutil.Eventually(t, 10*time.Second, "a pending ack", func() bool { return f.pendingAcks() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.sink.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := o.get(); n != 1 || err == nil {
		t.Fatalf("Done %d times with %v; want once with an error", n, err)
	}
	if err := h.sink.Consume(context.Background(), batch("app", 2, docs("app", "x", 1), 1, &outcome{})); err == nil {
		t.Error("Consume after Stop succeeded")
	}
}

// TestStopFlushes: Stop sends the pending request and waits for its ack.
func TestStopFlushes(t *testing.T) {
	f := newFakeHEC(testToken, true)
	defer f.close()
	cfg := testConfig(f, true)
	cfg.Batch.MaxWait = time.Hour
	h := newHarness(t, cfg)
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "f", 3), 3, &o))
	if err := h.sink.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, err := o.get(); n != 1 || err != nil {
		t.Fatalf("Done %d times with %v", n, err)
	}
	if len(f.events()) != 3 {
		t.Errorf("%d events, want 3", len(f.events()))
	}
}
