package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/sink/docscan"
)

// stopGrace bounds Stop when its context has no deadline, so a dead destination
// cannot hold a shutdown forever (unresolved batches are redelivered later).
const stopGrace = 10 * time.Second

// Engine delivers the documents of event batches with a Protocol.
//
// Flow: Consume frames each document of a batch into the pending request; a full
// request, or one older than MaxWait (the flusher), is handed to a delivery
// goroutine, at most MaxInFlight at once, and Consume blocks while all are busy.
// Each batch's tracker counts its unresolved documents and calls Done once, when
// the last one is delivered or dead-lettered (nil) or given up at stop or on a
// dead-letter failure (an error: the stream redelivers the batch).
type Engine struct {
	cfg        Config
	proto      Protocol
	log        *slog.Logger
	errStopped error

	sem chan struct{} // MaxInFlight slots

	// ctx is the context of every request and backoff; cancelled when Stop gives
	// up, which makes deliveries give up their remaining documents.
	ctx    context.Context
	cancel context.CancelFunc

	// outstanding counts framed documents not yet resolved and tasks started by
	// Go not yet returned (tasks of them); idle is signalled when it drops to
	// zero, which Stop waits for.
	outstanding atomic.Int64
	tasks       atomic.Int64
	idle        chan struct{}

	mu       sync.Mutex
	pending  *job
	started  bool
	stopped  bool
	consumes sync.WaitGroup // Consume calls under way, which may still dispatch
	flusher  sync.WaitGroup
	stopTick chan struct{}

	// closed, set by Stop before it waits for deliver, makes Resend give up
	// instead of starting a delivery nobody would wait for.
	goMu    sync.Mutex
	closed  bool
	deliver sync.WaitGroup // delivery goroutines and tasks started by Go
}

// New returns an engine; Start it before Consume.
func New(cfg Config, p Protocol) *Engine {
	e := &Engine{cfg: cfg, proto: p, log: cfg.Log, idle: make(chan struct{}, 1),
		errStopped: fmt.Errorf("%s: %w", cfg.Name, ErrStopped)}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e
}

// Start starts the engine. setup, when not nil, is the sink's own preparation
// (clients, background work); it runs first, with the context that Stop cancels
// when it gives up, and may call Go. Start does nothing when the engine was
// started or stopped before.
func (e *Engine) Start(setup func(ctx context.Context) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopped {
		return nil
	}
	e.sem = make(chan struct{}, e.cfg.MaxInFlight)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if setup != nil {
		if err := setup(e.ctx); err != nil {
			e.cancel()
			e.deliver.Wait()
			return err
		}
	}
	e.stopTick = make(chan struct{})
	e.flusher.Go(e.flushLoop)
	e.started = true
	return nil
}

// Go runs task in the background as part of delivery (the elasticsearch sink's
// template installer, which deliveries wait for): Stop waits for it as for
// deliveries, until its deadline, then cancels ctx. Call it from Start's setup.
func (e *Engine) Go(task func(ctx context.Context)) {
	e.outstanding.Add(1)
	e.tasks.Add(1)
	e.deliver.Go(func() {
		task(e.ctx)
		e.tasks.Add(-1)
		e.settled(1)
	})
}

// tracker counts the unresolved documents of one batch.
type tracker struct {
	e    *Engine
	b    *component.Batch
	mu   sync.Mutex
	left int
	err  error
}

// resolve marks n documents resolved; err non-nil means they were not delivered
// and the batch must come again. The last one calls Done.
func (t *tracker) resolve(n int, err error) {
	t.mu.Lock()
	t.left -= n
	if t.left < 0 {
		// A bug: a document resolved twice. Counted so tests and operators see it;
		// Done has been called already and is not called again.
		t.mu.Unlock()
		t.e.cfg.Counters.Error("internal_double_resolve")
		return
	}
	if err != nil && t.err == nil {
		t.err = err
	}
	done := t.left == 0
	outcome := t.err
	t.mu.Unlock()
	if done {
		t.b.Done(outcome)
	}
}

// job is one request's worth of documents, as framed.
type job struct {
	body  []byte
	docs  []doc
	first time.Time
}

// Consume frames the documents of b into requests; it blocks while MaxInFlight
// requests are under way, and fails only when the engine is not running.
func (e *Engine) Consume(ctx context.Context, b *component.Batch) error {
	e.mu.Lock()
	if e.stopped || !e.started {
		e.mu.Unlock()
		return fmt.Errorf("%s: sink is not running", e.cfg.Name)
	}
	e.consumes.Add(1)
	defer e.consumes.Done()
	// One extra count holds the batch open while its documents are being framed,
	// so a request delivered before the last one is framed cannot complete it early.
	tr := &tracker{e: e, b: b, left: 1}
	var full []*job
	_ = event.EachLine(b.Docs, func(doc []byte) error {
		if j := e.addLocked(tr, doc, b); j != nil {
			full = append(full, j)
		}
		return nil
	})
	e.mu.Unlock()
	for _, j := range full {
		e.dispatch(ctx, j)
	}
	tr.resolve(1, nil)
	return nil
}

// addLocked frames d into the pending job and returns a job that is now full.
func (e *Engine) addLocked(tr *tracker, d []byte, b *component.Batch) *job {
	var out *job
	p := e.pending
	if p != nil && len(p.docs) > 0 && len(p.body)+len(d)+e.cfg.Overhead > e.cfg.MaxBytes {
		out, p, e.pending = p, nil, nil
	}
	if p == nil {
		p = &job{body: make([]byte, 0, min(e.cfg.MaxBytes+e.cfg.MaxBytes/8, 64<<20)), first: time.Now()}
		e.pending = p
	}
	start := len(p.body)
	var at int
	p.body, at = e.proto.Frame(p.body, d, b)
	p.docs = append(p.docs, doc{start: int32(start), doc: int32(at), docEnd: int32(at + len(d)), end: int32(len(p.body)), tr: tr})
	tr.mu.Lock()
	tr.left++
	tr.mu.Unlock()
	e.outstanding.Add(1)
	if out == nil && (len(p.docs) >= e.cfg.MaxEvents || len(p.body) >= e.cfg.MaxBytes) {
		out, e.pending = p, nil
	}
	return out
}

// dispatch hands a full job to a delivery goroutine, waiting for a free slot.
func (e *Engine) dispatch(ctx context.Context, j *job) {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		e.giveUp(j.docs)
		return
	case <-e.ctx.Done():
		e.giveUp(j.docs)
		return
	}
	e.deliver.Go(func() {
		defer func() { <-e.sem }()
		defer func() {
			// A bug in a protocol fails the request's batches (they are redelivered)
			// instead of stopping the node.
			if r := recover(); r != nil {
				e.cfg.Counters.Error("panic")
				e.giveUp(j.docs)
			}
		}()
		e.run(j.body, [][]doc{j.docs}, true)
	})
}

// flushLoop sends a pending request once it is MaxWait old.
func (e *Engine) flushLoop() {
	t := time.NewTicker(max(e.cfg.MaxWait/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-e.stopTick:
			return
		case <-t.C:
		}
		e.mu.Lock()
		var j *job
		if p := e.pending; p != nil && len(p.docs) > 0 && time.Since(p.first) >= e.cfg.MaxWait {
			j, e.pending = p, nil
		}
		e.mu.Unlock()
		if j != nil {
			e.dispatch(e.ctx, j)
		}
	}
}

// run delivers groups of documents of src until each is delivered, dead-lettered,
// held by the protocol, or given up at stop. Documents that fail transiently are
// sent again together after a backoff; whole says src is exactly groups[0] framed.
func (e *Engine) run(src []byte, groups [][]doc, whole bool) {
	for attempt := 0; ; attempt++ {
		var retry []doc
		var hint time.Duration
		for len(groups) > 0 {
			g := groups[0]
			groups = groups[1:]
			body := src
			if !whole {
				body = frame(src, g)
			}
			whole = false
			res := e.proto.Send(e.ctx, body, &Request{src: src, docs: g})
			if res.Docs != nil {
				if len(res.Docs) != len(g) {
					// A protocol bug; sending the documents again loses nothing.
					e.cfg.Counters.Error("internal_outcomes")
					e.log.Error(e.cfg.Name+": outcomes do not match the request's documents; sending them again", "documents", len(g), "outcomes", len(res.Docs))
					retry = append(retry, g...)
					continue
				}
				again, later := e.settle(src, g, res.Docs)
				if len(again) > 0 {
					groups = append(groups, again)
				}
				if len(later) > 0 {
					retry = append(retry, later...)
					hint = max(hint, res.RetryAfter)
				}
				continue
			}
			switch res.Outcome {
			case Delivered:
				e.delivered(g)
			case Duplicate:
				e.duplicate(g)
			case DeadLetter:
				e.deadLetter(src, g, []string{res.Reason})
			case Split:
				if len(g) > 1 {
					groups = append(groups, g[:len(g)/2], g[len(g)/2:])
				} else {
					e.deadLetter(src, g, []string{res.Reason})
				}
			case Held:
				// The protocol owns the documents now.
			case Stopped:
				e.giveUp(g)
				for _, rest := range groups {
					e.giveUp(rest)
				}
				e.giveUp(retry)
				return
			default:
				// Retry; and Resend, which for a whole request would repeat it
				// without a pause.
				retry = append(retry, g...)
				hint = max(hint, res.RetryAfter)
			}
		}
		if len(retry) == 0 {
			return
		}
		e.cfg.Counters.Retry()
		d := e.cfg.Backoff.Delay(attempt, hint)
		e.log.Warn(e.cfg.Name+": retrying documents after transient failures", "documents", len(retry), "attempt", attempt+1, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-e.ctx.Done():
			t.Stop()
			e.giveUp(retry)
			return
		}
		groups = [][]doc{retry}
	}
}

// settle applies per-document outcomes and returns the documents to send again at
// once and those to send after the backoff.
func (e *Engine) settle(src []byte, g []doc, outs []DocOutcome) (again, later []doc) {
	var ok, dup, bad []doc
	var reasons []string
	for i, o := range outs {
		switch o.Outcome {
		case Delivered:
			ok = append(ok, g[i])
		case Duplicate:
			dup = append(dup, g[i])
		case DeadLetter:
			bad = append(bad, g[i])
			reasons = append(reasons, o.Reason)
		case Resend:
			again = append(again, g[i])
		default:
			later = append(later, g[i])
		}
	}
	e.delivered(ok)
	e.duplicate(dup)
	if len(bad) > 0 {
		e.deadLetter(src, bad, reasons)
	}
	return again, later
}

// frame builds a request body of some documents of src.
func frame(src []byte, docs []doc) []byte {
	n := 0
	for _, d := range docs {
		n += int(d.end - d.start)
	}
	out := make([]byte, 0, n)
	for _, d := range docs {
		out = append(out, src[d.start:d.end]...)
	}
	return out
}

// delivered counts and resolves documents the destination stored.
func (e *Engine) delivered(docs []doc) {
	if len(docs) == 0 {
		return
	}
	n := 0
	for _, d := range docs {
		n += int(d.docEnd - d.doc)
	}
	e.cfg.Counters.Sent(len(docs), n)
	e.resolveAll(docs, nil)
}

// duplicate counts and resolves documents the destination had already.
func (e *Engine) duplicate(docs []doc) {
	if len(docs) == 0 {
		return
	}
	e.cfg.Counters.Discarded("already_indexed", len(docs))
	e.resolveAll(docs, nil)
}

var idPath = []string{"event.id"}

// deadLetter sends documents the destination refused for good to the dead-letter
// stream, with the reason of each (one reason for all when reasons has a single
// entry).
func (e *Engine) deadLetter(src []byte, docs []doc, reasons []string) {
	now := time.Now()
	letters := make([]component.Letter, len(docs))
	var v [1][]byte
	for i, d := range docs {
		reason := reasons[0]
		if len(reasons) == len(docs) {
			reason = reasons[i]
		}
		original := src[d.doc:d.docEnd]
		l := component.Letter{Stage: "sink", Reason: reason, Dataset: d.tr.b.Dataset, Time: now, Original: original}
		if docscan.Lookup(original, idPath, v[:]) {
			if id, ok := docscan.StringValue(v[0]); ok && id != "" {
				// The same letter from a redelivery is then dropped as a duplicate.
				l.ID = "sink:" + e.cfg.Sink + ":" + id
			}
		}
		letters[i] = l
	}
	e.log.Warn(e.cfg.Name+": documents rejected, sending them to the dead-letter stream", "documents", len(docs), "first_reason", letters[0].Reason)
	err := errors.New("no dead-letter queue")
	if e.cfg.DeadLetter != nil {
		ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		err = e.cfg.DeadLetter(ctx, letters...)
		cancel()
	}
	if err != nil {
		e.cfg.Counters.Error("dead_letter")
		e.log.Error(e.cfg.Name+": cannot dead-letter rejected documents; their batches will be redelivered", "documents", len(docs), "err", err)
		e.resolveAll(docs, fmt.Errorf("%s: dead-lettering rejected documents: %w", e.cfg.Name, err))
		return
	}
	e.cfg.Counters.DeadLettered("sink", len(docs))
	e.resolveAll(docs, nil)
}

// resolveAll resolves documents, once per run of the same batch.
func (e *Engine) resolveAll(docs []doc, err error) {
	if len(docs) == 0 {
		return
	}
	for i := 0; i < len(docs); {
		k := i + 1
		for k < len(docs) && docs[k].tr == docs[i].tr {
			k++
		}
		docs[i].tr.resolve(k-i, err)
		i = k
	}
	e.settled(len(docs))
}

// giveUp resolves documents with the stopped error: their batches are redelivered.
func (e *Engine) giveUp(docs []doc) { e.resolveAll(docs, e.errStopped) }

// settled counts n documents (or tasks) done, signalling Stop when none are left.
func (e *Engine) settled(n int) {
	if e.outstanding.Add(int64(-n)) == 0 {
		select {
		case e.idle <- struct{}{}:
		default:
		}
	}
}

// Delivered resolves the documents of a request the protocol held, now that the
// destination confirmed them.
func (e *Engine) Delivered(r *Request) { e.delivered(r.docs) }

// GiveUp resolves the documents of a request the protocol held with ErrStopped:
// their batches are redelivered.
func (e *Engine) GiveUp(r *Request) { e.giveUp(r.docs) }

// Resend sends the documents of a request the protocol held again, in a new
// delivery (its confirmation was lost); after Stop has given up, it gives them up.
func (e *Engine) Resend(r *Request) {
	e.goMu.Lock()
	if e.closed {
		e.goMu.Unlock()
		e.giveUp(r.docs)
		return
	}
	e.deliver.Go(func() {
		select {
		case e.sem <- struct{}{}:
		case <-e.ctx.Done():
			e.giveUp(r.docs)
			return
		}
		defer func() { <-e.sem }()
		e.run(r.src, [][]doc{r.docs}, false)
	})
	e.goMu.Unlock()
}

// Stop sends the pending request and waits until every document is resolved
// (delivered, confirmed, dead-lettered) and every task started by Go has returned,
// or until ctx's deadline (stopGrace when it has none). Then it cancels the
// engine's context, so deliveries give up what is still unresolved (redelivered
// later), waits for them, and calls teardown when not nil. Stop is idempotent and
// safe without Start; teardown runs only after a Start.
func (e *Engine) Stop(ctx context.Context, teardown func()) {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return
	}
	e.stopped = true
	started := e.started
	p := e.pending
	e.pending = nil
	e.mu.Unlock()
	if !started {
		return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, stopGrace)
		defer cancel()
	}
	close(e.stopTick)
	e.flusher.Wait()
	e.consumes.Wait()
	if p != nil && len(p.docs) > 0 {
		e.dispatch(ctx, p)
	}
	var unresolved int64
	for e.outstanding.Load() > 0 {
		select {
		case <-e.idle:
			continue
		case <-ctx.Done():
		}
		unresolved = e.outstanding.Load() - e.tasks.Load()
		break
	}
	e.goMu.Lock()
	e.closed = true
	e.goMu.Unlock()
	e.cancel()
	e.deliver.Wait()
	if teardown != nil {
		teardown()
	}
	if unresolved > 0 {
		e.log.Warn(e.cfg.Name+": stopped before every document was delivered; their batches will be redelivered",
			"documents", unresolved)
	}
}
