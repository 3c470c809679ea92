package deliver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/deliver"
	"github.com/vigil-sec/vigil/internal/testutil"
)

const wait = 10 * time.Second

// fake is a protocol whose answers a test scripts. It frames a document as
// "> <doc>\n" and records the event.id of every document of every request.
type fake struct {
	// answer says what became of request number req (from 0) of the documents ids.
	answer func(req int, ids []string) deliver.Result
	// gate, when not nil, holds every Send until it is closed.
	gate chan struct{}

	mu          sync.Mutex
	reqs        [][]string
	held        []*deliver.Request
	inFlight    int
	maxInFlight int
}

var idRE = regexp.MustCompile(`"id":"([^"]*)"`)

func (f *fake) frame(body, doc []byte, _ *component.Batch) ([]byte, int) {
	body = append(body, "> "...)
	at := len(body)
	body = append(body, doc...)
	return append(body, '\n'), at
}

func (f *fake) send(ctx context.Context, body []byte, r *deliver.Request) deliver.Result {
	var ids []string
	for line := range bytes.Lines(body) {
		if !bytes.HasPrefix(line, []byte("> ")) {
			panic(fmt.Sprintf("request body not framed by the protocol: %q", line))
		}
		ids = append(ids, string(idRE.FindSubmatch(line)[1]))
	}
	if len(ids) != r.Len() {
		panic(fmt.Sprintf("body holds %d documents, the request %d", len(ids), r.Len()))
	}
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, ids)
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return deliver.Result{Outcome: deliver.Stopped}
		}
	}
	res := deliver.Result{Outcome: deliver.Delivered}
	if f.answer != nil {
		res = f.answer(n, ids)
	}
	if res.Outcome == deliver.Held && res.Docs == nil {
		f.mu.Lock()
		f.held = append(f.held, r)
		f.mu.Unlock()
	}
	return res
}

func (f *fake) requests() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *fake) lastHeld() *deliver.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.held) == 0 {
		return nil
	}
	return f.held[len(f.held)-1]
}

// harness is an engine under test with its fake protocol, metrics and letters.
type harness struct {
	e       *deliver.Engine
	f       *fake
	metrics *component.Metrics

	mu      sync.Mutex
	letters []component.Letter
	deadErr error // what DeadLetter answers
}

// newHarness starts an engine with small limits and a fast backoff, changed by
// tune when not nil; the test's cleanup stops it.
func newHarness(t *testing.T, f *fake, tune func(*deliver.Config)) *harness {
	t.Helper()
	h := &harness{f: f, metrics: component.NewMetrics(prometheus.NewRegistry())}
	cfg := deliver.Config{Name: "test", Sink: "t", MaxBytes: 1 << 20, MaxEvents: 100, MaxWait: 10 * time.Millisecond,
		Overhead: 3, MaxInFlight: 2, Backoff: deliver.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
		Counters: h.metrics.For("sink", "t"),
		DeadLetter: func(_ context.Context, letters ...component.Letter) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.deadErr != nil {
				return h.deadErr
			}
			for _, l := range letters {
				l.Original = bytes.Clone(l.Original)
				h.letters = append(h.letters, l)
			}
			return nil
		}}
	if tune != nil {
		tune(&cfg)
	}
	h.e = deliver.New(cfg, deliver.Protocol{Frame: f.frame, Send: f.send})
	if err := h.e.Start(nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.e.Stop(context.Background(), nil) })
	return h
}

func (h *harness) Letters() []component.Letter {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.letters)
}

func (h *harness) counter(v *prometheus.CounterVec, labels ...string) float64 {
	var m dto.Metric
	if err := v.WithLabelValues(append([]string{"sink", "t"}, labels...)...).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// outcome records the Done calls of one batch.
type outcome struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (o *outcome) done(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	o.err = err
}

func (o *outcome) get() (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls, o.err
}

// wait waits for the batch to be done and checks it was done once.
func (o *outcome) wait(t *testing.T) error {
	t.Helper()
	testutil.Eventually(t, wait, "batch done", func() bool { n, _ := o.get(); return n > 0 })
	n, err := o.get()
	if n != 1 {
		t.Errorf("Done called %d times, want once", n)
	}
	return err
}

// docs returns n documents with event.id "<prefix>-<i>".
func docs(prefix string, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"event":{"id":"%s-%d"},"message":"m %d"}`+"\n", prefix, i, i)
	}
	return b.Bytes()
}

func batch(d []byte, n int, o *outcome) *component.Batch {
	return component.NewBatch("app", 1, time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC), d, n, o.done)
}

// ids returns "d-<i>" for each i.
func ids(is ...int) []string {
	out := make([]string, len(is))
	for k, i := range is {
		out[k] = fmt.Sprint("d-", i)
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// perDoc answers each document by its id.
func perDoc(f func(id string) deliver.DocOutcome) func(int, []string) deliver.Result {
	return func(_ int, ids []string) deliver.Result {
		outs := make([]deliver.DocOutcome, len(ids))
		for i, id := range ids {
			outs[i] = f(id)
		}
		return deliver.Result{Docs: outs}
	}
}

// TestOutcomes sends one batch of d-0… through a scripted destination and checks
// what was sent, what became of the batch, its dead letters and the counters.
func TestOutcomes(t *testing.T) {
	errDead := errors.New("dead-letter stream unavailable")
	tests := []struct {
		name   string
		docs   int
		tune   func(*deliver.Config)
		answer func(req int, ids []string) deliver.Result
		// stopAfter, when set, stops the engine with a short deadline once that many
		// requests were sent.
		stopAfter int
		deadErr   error

		wantReqs    [][]string
		wantErr     error // nil, or what the batch's error must wrap
		wantLetters []string
		wantSent    float64
		wantRetries float64
	}{
		{
			name: "all ok", docs: 5,
			wantReqs: [][]string{ids(span(0, 4)...)}, wantSent: 5,
		},
		{
			name: "partial retry then ok", docs: 6,
			answer: func(req int, ids []string) deliver.Result {
				if req > 0 {
					return deliver.Result{Outcome: deliver.Delivered}
				}
				return perDoc(func(id string) deliver.DocOutcome {
					if strings.HasSuffix(id, "1") || strings.HasSuffix(id, "3") || strings.HasSuffix(id, "5") {
						return deliver.DocOutcome{Outcome: deliver.Retry}
					}
					return deliver.DocOutcome{Outcome: deliver.Delivered}
				})(req, ids)
			},
			wantReqs: [][]string{ids(span(0, 5)...), ids(1, 3, 5)}, wantSent: 6, wantRetries: 1,
		},
		{
			name: "whole request retried until ok", docs: 3,
			answer: func(req int, _ []string) deliver.Result {
				if req < 2 {
					return deliver.Result{Outcome: deliver.Retry}
				}
				return deliver.Result{Outcome: deliver.Delivered}
			},
			wantReqs: [][]string{ids(0, 1, 2), ids(0, 1, 2), ids(0, 1, 2)}, wantSent: 3, wantRetries: 2,
		},
		{
			name: "permanent failures dead-lettered", docs: 5,
			answer: perDoc(func(id string) deliver.DocOutcome {
				if id == "d-1" || id == "d-3" {
					return deliver.DocOutcome{Outcome: deliver.DeadLetter, Reason: "mapping error in " + id}
				}
				return deliver.DocOutcome{Outcome: deliver.Delivered}
			}),
			wantReqs: [][]string{ids(span(0, 4)...)}, wantLetters: ids(1, 3), wantSent: 3,
		},
		{
			name: "duplicates resolve without counting as sent", docs: 3,
			answer: perDoc(func(id string) deliver.DocOutcome {
				if id == "d-2" {
					return deliver.DocOutcome{Outcome: deliver.Duplicate}
				}
				return deliver.DocOutcome{Outcome: deliver.Delivered}
			}),
			wantReqs: [][]string{ids(0, 1, 2)}, wantSent: 2,
		},
		{
			name: "split isolates the document at fault", docs: 8,
			answer: func(_ int, got []string) deliver.Result {
				if slices.Contains(got, "d-5") {
					return deliver.Result{Outcome: deliver.Split, Reason: "request refused"}
				}
				return deliver.Result{Outcome: deliver.Delivered}
			},
			wantReqs:    [][]string{ids(span(0, 7)...), ids(0, 1, 2, 3), ids(4, 5, 6, 7), ids(4, 5), ids(6, 7), ids(4), ids(5)},
			wantLetters: ids(5), wantSent: 7,
		},
		{
			name: "the others of a refused document are resent at once", docs: 5,
			answer: func(req int, ids []string) deliver.Result {
				if req > 0 {
					return deliver.Result{Outcome: deliver.Delivered}
				}
				return perDoc(func(id string) deliver.DocOutcome {
					if id == "d-2" {
						return deliver.DocOutcome{Outcome: deliver.DeadLetter, Reason: "invalid event"}
					}
					return deliver.DocOutcome{Outcome: deliver.Resend}
				})(req, ids)
			},
			wantReqs: [][]string{ids(span(0, 4)...), ids(0, 1, 3, 4)}, wantLetters: ids(2), wantSent: 4,
		},
		{
			name: "backoff capped: a Retry-After beyond retry.max waits only the cap", docs: 2,
			answer: func(req int, _ []string) deliver.Result {
				if req == 0 {
					return deliver.Result{Outcome: deliver.Retry, RetryAfter: time.Hour}
				}
				return deliver.Result{Outcome: deliver.Delivered}
			},
			wantReqs: [][]string{ids(0, 1), ids(0, 1)}, wantSent: 2, wantRetries: 1,
		},
		{
			name: "a dead-letter failure has the batch redelivered", docs: 2, deadErr: errDead,
			answer: func(int, []string) deliver.Result {
				return deliver.Result{Outcome: deliver.DeadLetter, Reason: "refused"}
			},
			wantReqs: [][]string{ids(0, 1)}, wantErr: errDead,
		},
		{
			name: "context cancelled mid-backoff", docs: 3,
			tune: func(c *deliver.Config) { c.Backoff = deliver.Backoff{Initial: time.Hour, Max: time.Hour} },
			answer: func(int, []string) deliver.Result {
				return deliver.Result{Outcome: deliver.Retry}
			},
			stopAfter: 1,
			wantReqs:  [][]string{ids(0, 1, 2)}, wantErr: deliver.ErrStopped, wantRetries: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{answer: tt.answer}
			h := newHarness(t, f, tt.tune)
			h.deadErr = tt.deadErr
			var o outcome
			if err := h.e.Consume(context.Background(), batch(docs("d", tt.docs), tt.docs, &o)); err != nil {
				t.Fatal(err)
			}
			if tt.stopAfter > 0 {
				testutil.Eventually(t, wait, "requests sent", func() bool { return len(f.requests()) >= tt.stopAfter })
				testutil.Eventually(t, wait, "backing off", func() bool { return h.counter(h.metrics.Retries) > 0 })
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				start := time.Now()
				h.e.Stop(ctx, nil)
				if d := time.Since(start); d > wait/2 {
					t.Errorf("Stop took %v: it waited out the backoff", d)
				}
			}
			err := o.wait(t)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("batch done with %v, want nil", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("batch done with %v, want %v", err, tt.wantErr)
			}
			if got := f.requests(); !slices.EqualFunc(got, tt.wantReqs, slices.Equal) {
				t.Errorf("requests %v, want %v", got, tt.wantReqs)
			}
			var letters []string
			for _, l := range h.Letters() {
				letters = append(letters, strings.TrimPrefix(l.ID, "sink:t:"))
				if l.Stage != "sink" || l.Dataset != "app" || l.Reason == "" ||
					!bytes.HasPrefix(l.Original, []byte(`{"event":{"id":"`)) || !bytes.HasSuffix(l.Original, []byte(`"}`)) {
					t.Errorf("letter %+v", l)
				}
			}
			if !slices.Equal(letters, tt.wantLetters) {
				t.Errorf("dead letters %v, want %v", letters, tt.wantLetters)
			}
			if got := h.counter(h.metrics.DeadLettered, "sink"); got != float64(len(tt.wantLetters)) {
				t.Errorf("dead-lettered %v, want %d", got, len(tt.wantLetters))
			}
			if got := h.counter(h.metrics.SentEvents); got != tt.wantSent {
				t.Errorf("sent %v, want %v", got, tt.wantSent)
			}
			if got := h.counter(h.metrics.Retries); got != tt.wantRetries {
				t.Errorf("retries %v, want %v", got, tt.wantRetries)
			}
			if got := h.counter(h.metrics.Errors, "internal_double_resolve"); got != 0 {
				t.Errorf("documents resolved twice: %v", got)
			}
		})
	}
}

// TestDeadLetterReasons: each dead letter carries its own document's reason, the
// original bytes and an ID derived from its event.id.
func TestDeadLetterReasons(t *testing.T) {
	f := &fake{answer: perDoc(func(id string) deliver.DocOutcome {
		return deliver.DocOutcome{Outcome: deliver.DeadLetter, Reason: "bad " + id}
	})}
	h := newHarness(t, f, nil)
	var o outcome
	d := docs("d", 2)
	_ = h.e.Consume(context.Background(), batch(d, 2, &o))
	if err := o.wait(t); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(d), []byte("\n"))
	for i, l := range h.Letters() {
		if l.Reason != fmt.Sprint("bad d-", i) || l.ID != fmt.Sprint("sink:t:d-", i) || !bytes.Equal(l.Original, lines[i]) {
			t.Errorf("letter %d: %+v", i, l)
		}
	}
}

// TestRequestLimits: documents are split into requests by count and by bytes; a
// request holds documents of several batches, and each batch is done once.
func TestRequestLimits(t *testing.T) {
	// Each document of docs("d", n) with n <= 10 frames to 41 bytes.
	tests := []struct {
		name      string
		maxEvents int
		maxBytes  int
		batches   []int // documents per batch
		want      []int // documents per request
	}{
		{name: "by count", maxEvents: 3, maxBytes: 1 << 20, batches: []int{7}, want: []int{3, 3, 1}},
		{name: "by bytes", maxEvents: 100, maxBytes: 100, batches: []int{7}, want: []int{2, 2, 2, 1}},
		{name: "a document larger than max_bytes goes alone", maxEvents: 100, maxBytes: 10, batches: []int{3}, want: []int{1, 1, 1}},
		{name: "batches share a request", maxEvents: 4, maxBytes: 1 << 20, batches: []int{2, 1, 3}, want: []int{4, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{}
			h := newHarness(t, f, func(c *deliver.Config) {
				c.MaxEvents, c.MaxBytes, c.MaxInFlight = tt.maxEvents, tt.maxBytes, 1
			})
			outs := make([]outcome, len(tt.batches))
			for i, n := range tt.batches {
				if err := h.e.Consume(context.Background(), batch(docs("d", n), n, &outs[i])); err != nil {
					t.Fatal(err)
				}
			}
			for i := range outs {
				if err := outs[i].wait(t); err != nil {
					t.Errorf("batch %d: %v", i, err)
				}
			}
			var got []int
			for _, r := range f.requests() {
				got = append(got, len(r))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("requests of %v documents, want %v", got, tt.want)
			}
		})
	}
}

// TestInFlightBound: no more than MaxInFlight requests are under way, and Consume
// blocks (backpressure) while all are.
func TestInFlightBound(t *testing.T) {
	f := &fake{gate: make(chan struct{})}
	h := newHarness(t, f, func(c *deliver.Config) { c.MaxEvents, c.MaxInFlight = 1, 2 })
	var o outcome
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		_ = h.e.Consume(context.Background(), batch(docs("d", 6), 6, &o))
	}()
	testutil.Eventually(t, wait, "two requests under way", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.inFlight == 2
	})
	select {
	case <-consumed:
		t.Fatal("Consume returned with every slot busy and requests left to send")
	default:
	}
	close(f.gate)
	<-consumed
	if err := o.wait(t); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxInFlight != 2 || len(f.reqs) != 6 {
		t.Errorf("%d requests, at most %d at once; want 6, 2", len(f.reqs), f.maxInFlight)
	}
}

// TestHeld: a request the protocol holds is resolved by the protocol: sent again
// when its confirmation is lost, done when confirmed, given up at stop.
func TestHeld(t *testing.T) {
	held := func(int, []string) deliver.Result { return deliver.Result{Outcome: deliver.Held} }

	t.Run("resent then confirmed", func(t *testing.T) {
		f := &fake{answer: held}
		h := newHarness(t, f, nil)
		var o outcome
		_ = h.e.Consume(context.Background(), batch(docs("d", 3), 3, &o))
		testutil.Eventually(t, wait, "held", func() bool { return f.lastHeld() != nil })
		first := f.lastHeld()
		h.e.Resend(first)
		testutil.Eventually(t, wait, "held again", func() bool { return f.lastHeld() != first })
		if n, _ := o.get(); n != 0 {
			t.Fatal("batch done before its request was confirmed")
		}
		h.e.Delivered(f.lastHeld())
		if err := o.wait(t); err != nil {
			t.Fatal(err)
		}
		if got := f.requests(); !slices.EqualFunc(got, [][]string{ids(0, 1, 2), ids(0, 1, 2)}, slices.Equal) {
			t.Errorf("requests %v", got)
		}
		if got := h.counter(h.metrics.SentEvents); got != 3 {
			t.Errorf("sent %v, want 3", got)
		}
	})

	t.Run("given up at stop", func(t *testing.T) {
		f := &fake{answer: held}
		h := newHarness(t, f, nil)
		var o outcome
		_ = h.e.Consume(context.Background(), batch(docs("d", 2), 2, &o))
		testutil.Eventually(t, wait, "held", func() bool { return f.lastHeld() != nil })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		// Stop waits for the held request until its deadline; a protocol then
		// gives up what it holds, and a resend after Stop gives up at once.
		h.e.Stop(ctx, func() { h.e.Resend(f.lastHeld()) })
		if err := o.wait(t); !errors.Is(err, deliver.ErrStopped) {
			t.Errorf("batch done with %v, want ErrStopped", err)
		}
		if n := len(f.requests()); n != 1 {
			t.Errorf("%d requests after stop, want 1", n)
		}
	})
}

// TestStop: Stop sends what is pending, waits for tasks started by Go until its
// deadline, and the engine takes no batch afterwards.
func TestStop(t *testing.T) {
	f := &fake{}
	metrics := component.NewMetrics(prometheus.NewRegistry())
	e := deliver.New(deliver.Config{Name: "test", Sink: "t", MaxBytes: 1 << 20, MaxEvents: 100, MaxWait: time.Hour,
		MaxInFlight: 1, Backoff: deliver.Backoff{Initial: time.Millisecond, Max: time.Millisecond},
		Counters: metrics.For("sink", "t")}, deliver.Protocol{Frame: f.frame, Send: f.send})
	var o outcome
	if err := e.Consume(context.Background(), batch(docs("d", 1), 1, &o)); err == nil {
		t.Error("Consume before Start accepted a batch")
	}
	taskDone := make(chan error, 1)
	err := e.Start(func(context.Context) error {
		e.Go(func(ctx context.Context) {
			<-ctx.Done()
			taskDone <- ctx.Err()
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Consume(context.Background(), batch(docs("d", 3), 3, &o)); err != nil {
		t.Fatal(err)
	}
	if len(f.requests()) != 0 {
		t.Fatal("sent before max_wait")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	tornDown := false
	e.Stop(ctx, func() { tornDown = true })
	if err := o.wait(t); err != nil {
		t.Errorf("pending batch: %v", err)
	}
	if len(f.requests()) != 1 || !tornDown {
		t.Errorf("%d requests, teardown %v", len(f.requests()), tornDown)
	}
	select {
	case err := <-taskDone:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("task ended with %v", err)
		}
	default:
		t.Error("Stop returned before the task")
	}
	var late outcome
	if err := e.Consume(context.Background(), batch(docs("d", 1), 1, &late)); err == nil {
		t.Error("Consume after Stop accepted a batch")
	}
	e.Stop(context.Background(), func() { t.Error("teardown ran twice") })
	if err := e.Start(nil); err != nil {
		t.Error(err)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := deliver.Backoff{Initial: time.Second, Max: 30 * time.Second}
	tests := []struct {
		name     string
		attempt  int
		hint     time.Duration
		min, max time.Duration
	}{
		{name: "first", attempt: 0, min: 500 * time.Millisecond, max: time.Second},
		{name: "grows", attempt: 3, min: 4 * time.Second, max: 8 * time.Second},
		{name: "capped", attempt: 5, min: 15 * time.Second, max: 30 * time.Second},
		{name: "capped without overflow", attempt: 1000, min: 15 * time.Second, max: 30 * time.Second},
		{name: "at least the hint", attempt: 0, hint: 5 * time.Second, min: 5 * time.Second, max: 5 * time.Second},
		{name: "hint capped", attempt: 0, hint: time.Hour, min: 30 * time.Second, max: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				if d := b.Delay(tt.attempt, tt.hint); d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d, %v) = %v, want %v to %v", tt.attempt, tt.hint, d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		give string
		want time.Duration
	}{
		{"", 0},
		{"5", 5 * time.Second},
		{" 7 ", 7 * time.Second},
		{"-1", 0},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0},
		{"99999", time.Hour},
	}
	for _, tt := range tests {
		if got := deliver.RetryAfter(tt.give); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}
