package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/deadletter"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// sinkRunner feeds one sink from its own durable consumer of the events stream, so a
// slow or dead destination holds back nobody else.
type sinkRunner struct {
	st       *stream.Stream
	cfg      *config.Sink
	buffer   config.Buffer
	memory   config.Limits
	sink     component.Sink
	log      *slog.Logger
	counters *component.Counters
	letters  *deadletter.Writer

	// held are the messages handed to the sink and not yet done; they are kept alive
	// with InProgress so a sink that holds a batch through an outage longer than
	// ack_wait does not get it redelivered (and sent twice) meanwhile.
	// heldIDs are the message IDs of the held batches, so that a copy published
	// again under a new sequence waits for the outcome of the one held.
	heldMu  sync.Mutex
	held    map[uint64]jetstream.Msg
	heldIDs map[string]uint64

	// delivered and acks: see deliveredLog. Done(nil) notes the batch in the log's
	// memory and queues it on acks; the acker records a group with one fsync, then
	// acknowledges their messages. The acker also prunes the log (and the sink, if it
	// is a component.Pruner) every pruneEvery, with floors.
	dataDir    string
	delivered  *deliveredLog
	acks       chan ackItem
	pruneEvery time.Duration
	floors     floors

	// docsFree holds the memory of batches the sink released (Batch.Release), for
	// decoding the next ones into; see releaseDocs.
	docsFree chan []byte
	// releasing is set once the sink has released a batch.
	releasing atomic.Bool
	// frameEnc is the encoding of the frames the sink writes as they are (a
	// component.FrameSink), or empty; dec decompresses the other batches (run's).
	frameEnc string
	dec      event.FrameDecoder

	ackerDone chan struct{}
	runDone   chan struct{} // closed when run returns

	started bool // start succeeded: stop has something to stop
	cons    jetstream.Consumer
	iter    *fetchIter
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// ConsumerName is the durable consumer of the sink with the given name.
func ConsumerName(sink string) string { return "sink-" + sink }

// filterSubjects turns dataset globs into NATS subject filters that match at least
// what the globs match; the runner checks the globs exactly on each batch.
func filterSubjects(inputs []string) []string {
	var subs []string
	for _, in := range inputs {
		switch {
		case !strings.ContainsAny(in, "*?[\\"):
			subs = append(subs, wire.EventsSubject(in))
		case strings.HasSuffix(in, ".*") && !strings.ContainsAny(strings.TrimSuffix(in, ".*"), "*?[\\"):
			subs = append(subs, wire.EventsSubject(strings.TrimSuffix(in, ".*")+".>"))
		default:
			return []string{wire.EventsSubject(">")}
		}
	}
	return subs
}

func (r *sinkRunner) matches(dataset string) bool {
	for _, in := range r.cfg.Inputs {
		if ok, _ := path.Match(in, dataset); ok {
			return true
		}
	}
	return false
}

// ackItem is a delivered batch waiting to be recorded and acknowledged.
type ackItem struct {
	msg jetstream.Msg
	rec delivery
}

// defaultPruneEvery is how often a sink runner prunes its delivered log.
const defaultPruneEvery = 30 * time.Second

// start starts the sink, declares its consumer and starts delivering. A start that
// fails leaves nothing running or open, and stop is then a no-op: a failure here
// (the consumer cannot be declared while the cluster elects a leader, say) must not
// leave a half-started runner whose stop waits for an acker that never ran.
func (r *sinkRunner) start(ctx context.Context) (err error) {
	d, err := openDeliveredLog(filepath.Join(r.dataDir, "sinks", r.cfg.Name+".delivered"), r.st.EventsEpoch())
	if err != nil {
		return fmt.Errorf("sink %s: delivered log: %w", r.cfg.Name, err)
	}
	sinkStarted := false
	defer func() {
		if err == nil {
			return
		}
		if sinkStarted {
			stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if serr := r.sink.Stop(stopCtx); serr != nil {
				r.log.Warn("sink: stopping after a failed start", "sink", r.cfg.Name, "err", serr)
			}
			cancel()
		}
		_ = d.Close()
	}()
	if r.pruneEvery <= 0 {
		r.pruneEvery = defaultPruneEvery
	}
	if err := r.sink.Start(ctx); err != nil {
		return fmt.Errorf("sink %s: %w", r.cfg.Name, err)
	}
	sinkStarted = true
	subs := filterSubjects(r.cfg.Inputs)
	cc := jetstream.ConsumerConfig{
		Durable:       ConsumerName(r.cfg.Name),
		Description:   "Vigil sink " + r.cfg.Name + " (" + r.cfg.Type + ")",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.buffer.AckWait,
		MaxAckPending: 10000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if len(subs) == 1 {
		cc.FilterSubject = subs[0]
	} else {
		cc.FilterSubjects = subs
	}
	cons, err := r.st.DeclareConsumer(ctx, stream.EventsStream, cc)
	if err != nil {
		return fmt.Errorf("sink %s: consumer: %w", r.cfg.Name, err)
	}
	r.cons = cons
	if fs, ok := r.sink.(component.FrameSink); ok {
		r.frameEnc = fs.FrameEncoding()
	}
	iter := &fetchIter{cons: cons, n: pullBatches(r.memory.Share(16)), wait: min(time.Second, r.buffer.AckWait/4)}
	r.iter = iter
	r.delivered = d
	r.acks = make(chan ackItem, 1024)
	r.docsFree = make(chan []byte, docsKept)
	r.started = true
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.held = map[uint64]jetstream.Msg{}
	r.heldIDs = map[string]uint64{}
	r.runDone = make(chan struct{})
	r.wg.Go(func() { defer close(r.runDone); r.run(runCtx) })
	r.wg.Go(func() { r.keepAlive(runCtx) })
	r.ackerDone = make(chan struct{})
	go func() { defer close(r.ackerDone); r.acker() }()
	return nil
}

// acker records delivered batches durably, then acknowledges their messages. It
// runs until acks is closed (after the sink has stopped) and drains it.
func (r *sinkRunner) acker() {
	var group []ackItem
	var recs []delivery
	prune := time.NewTicker(r.pruneEvery)
	defer prune.Stop()
	for {
		var it ackItem
		var ok bool
		select {
		case it, ok = <-r.acks:
		case <-prune.C:
			r.prune()
			continue
		}
		if !ok {
			return
		}
		group, recs = append(group[:0], it), recs[:0]
	more:
		for len(group) < 256 {
			select {
			case it, ok := <-r.acks:
				if !ok {
					break more
				}
				group = append(group, it)
			default:
				break more
			}
		}
		for _, it := range group {
			recs = append(recs, it.rec)
		}
		if err := r.delivered.Add(recs); err != nil {
			// Without the record a crash could deliver these again; acknowledging
			// anyway is still right (they are delivered), so only count it.
			r.counters.Error("delivered_log")
			r.log.Warn("sink: cannot record delivered batches", "sink", r.cfg.Name, "err", err)
		}
		for _, it := range group {
			_ = it.msg.Ack()
		}
	}
}

// prune observes the sink's consumer, then the processing consumer and the events
// stream, and forgets what floors says cannot come back, in the delivered log and
// in the sink.
func (r *sinkRunner) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := r.cons.Info(ctx)
	if err != nil {
		return
	}
	obs := observation{ackFloor: info.AckFloor.Stream, caughtUp: info.NumPending == 0 && info.NumAckPending == 0}
	var m *mark
	js := r.st.JetStream()
	// On a node without processing, or before processing has ever run, there is no
	// processing consumer: then no mark, and message IDs are kept.
	if pc, err := js.Consumer(ctx, stream.IntakeStream, process.ProcessingConsumer); err == nil {
		if es, err := js.Stream(ctx, stream.EventsStream); err == nil {
			m = &mark{intake: pc.CachedInfo().AckFloor.Stream, events: es.CachedInfo().State.LastSeq}
		}
	}
	seqFloor, intakeFloor := r.floors.tick(obs, m)
	epoch := r.st.Epoch()
	keepID := func(id string) bool {
		e, q, ok := wire.ParseEventsID(id)
		// Another intake epoch: that intake stream is gone, its messages cannot be
		// processed again.
		return ok && e == epoch && q > intakeFloor
	}
	if err := r.delivered.Prune(seqFloor, keepID); err != nil {
		r.log.Warn("sink: pruning the delivered log failed", "sink", r.cfg.Name, "err", err)
	}
	if p, ok := r.sink.(component.Pruner); ok {
		p.Prune(r.st.EventsEpoch(), seqFloor)
	}
}

// keepAlive tells the stream, every third of ack_wait, that held batches are still
// being worked on.
func (r *sinkRunner) keepAlive(ctx context.Context) {
	t := time.NewTicker(max(r.buffer.AckWait/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.heldMu.Lock()
		msgs := make([]jetstream.Msg, 0, len(r.held))
		for _, m := range r.held {
			msgs = append(msgs, m)
		}
		r.heldMu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

func (r *sinkRunner) run(ctx context.Context) {
	for {
		// The context ends the wait when stop gives up on draining (a drain needs
		// the server to answer; stop must not wait longer than its deadline).
		msg, err := r.iter.Next(ctx)
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("sink: receive failed", "sink", r.cfg.Name, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		dataset := wire.DatasetOf(msg.Subject())
		if !r.matches(dataset) {
			_ = msg.Ack()
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			_ = msg.Nak()
			continue
		}
		seq := md.Sequence.Stream
		id := msg.Headers().Get(nats.MsgIdHdr)
		r.heldMu.Lock()
		_, busy := r.held[seq]
		otherSeq, copyHeld := r.heldIDs[id]
		copyHeld = copyHeld && id != "" && otherSeq != seq
		r.heldMu.Unlock()
		if busy {
			// A redelivery of a batch the sink still holds (it waited in the pull
			// buffer past ack_wait): the held copy's outcome settles this sequence.
			r.counters.Discarded("redelivered_while_held", 1)
			continue
		}
		if r.delivered.Has(seq) {
			// Delivered before a crash lost the stream's record of the acknowledgement
			// (a server restarted from lazily saved consumer state may even count it as
			// a first delivery, so every message is checked).
			r.counters.Discarded("already_delivered", 1)
			_ = msg.Ack()
			continue
		}
		if id != "" && r.delivered.HasID(id) {
			// The same batch published again under a new sequence: processing
			// re-processed its intake message after the stream's duplicate window.
			r.counters.Discarded("republished", countOf(msg))
			_ = msg.Ack()
			continue
		}
		if copyHeld {
			// Another copy is with the sink: its outcome decides. Ask again later, when
			// it is either recorded as delivered or handed back.
			_ = msg.NakWithDelay(min(r.buffer.AckWait, 5*time.Second))
			continue
		}
		// A batch compressed as the sink writes goes to it as it is; another is
		// decompressed.
		evs, frame, framed := wire.ReadFrame(r.frameEnc, msg.Subject(), msg.Headers(), msg.Data())
		if !framed {
			evs, err = r.decode(msg)
		}
		if err != nil {
			// A batch we wrote ourselves and cannot read is a bug or corruption: keep it
			// for inspection in the DLQ instead of retrying forever.
			r.counters.Error("corrupt_batch")
			r.log.Error("sink: corrupt event batch, dead-lettering it", "sink", r.cfg.Name, "seq", seq, "err", err)
			letter := component.Letter{Stage: "sink", Reason: "corrupt event batch: " + err.Error(), Source: evs.Source,
				Dataset: dataset, Original: msg.Data(), ID: fmt.Sprintf("sink:%s:%d:%d", r.cfg.Name, r.st.EventsEpoch(), seq)}
			if err := storeLetters(ctx, r.st, r.letters, []component.Letter{letter}); err != nil {
				_ = msg.NakWithDelay(5 * time.Second)
				continue
			}
			_ = msg.Ack()
			continue
		}
		docs, count := evs.Docs, evs.Count
		m := msg
		attempts := md.NumDelivered
		rec := delivery{epoch: r.st.EventsEpoch(), seq: seq, id: id}
		r.heldMu.Lock()
		r.held[seq] = m
		if id != "" {
			r.heldIDs[id] = seq
		}
		r.heldMu.Unlock()
		b := component.NewBatch(dataset, seq, md.Timestamp, docs, count, func(err error) {
			if err == nil {
				// Noted before the held entry goes, so that no copy slips between.
				r.delivered.Note(rec)
			}
			r.heldMu.Lock()
			delete(r.held, seq)
			if id != "" && r.heldIDs[id] == seq {
				delete(r.heldIDs, id)
			}
			r.heldMu.Unlock()
			if err == nil {
				r.acks <- ackItem{msg: m, rec: rec}
				return
			}
			r.counters.Retry()
			_ = m.NakWithDelay(backoff(attempts))
		})
		b.Epoch = rec.epoch
		b.Redelivered = md.NumDelivered > 1
		b.Frame, b.Size = frame, evs.Size
		b.OnRelease(r.releaseDocs)
		r.counters.Received(count, evs.Size)
		if err := r.consume(ctx, b); err != nil {
			r.log.Error("sink: cannot take batches", "sink", r.cfg.Name, "err", err)
			b.Done(err)
			sleep(ctx, time.Second)
		}
	}
}

// docsKept is how many released document buffers a sink runner keeps for reuse
// (each up to about event.MaxBatchBytes).
const docsKept = 2

// releaseDocs keeps docs for decoding a later batch into, if there is room; it may
// be called from any goroutine.
func (r *sinkRunner) releaseDocs(docs []byte) {
	r.releasing.Store(true)
	select {
	case r.docsFree <- docs[:0]:
	default:
	}
}

// pullBatches is how many event batches one pull of a sink asks for so that they
// take at most bytes (a sixteenth of limits.memory): batches are cut at
// event.MaxBatchBytes. At least 4, so that small budgets still pull ahead.
func pullBatches(bytes int) int { return max(4, bytes/(event.MaxBatchBytes+64<<10)) }

// decode decompresses an event batch. The sink owns the batch's bytes until it
// releases them: decode into the memory of a batch released before, or a fresh
// buffer.
func (r *sinkRunner) decode(msg jetstream.Msg) (wire.Events, error) {
	var dst []byte
	select {
	case dst = <-r.docsFree:
	default:
		if r.releasing.Load() {
			// Room for a batch of the size producers aim at, so that the memory
			// fits the next batches when the sink releases it.
			dst = make([]byte, 0, event.MaxBatchBytes)
		}
	}
	return wire.ReadEventsInto(&r.dec, dst, msg.Subject(), msg.Headers(), msg.Data())
}

// consume hands b to the sink; a panic in the sink fails the batch (it is redelivered
// after a backoff) instead of stopping the node.
func (r *sinkRunner) consume(ctx context.Context, b *component.Batch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.counters.Error("panic")
			err = fmt.Errorf("the sink failed on a bug (please report it): %v", p)
		}
	}()
	return r.sink.Consume(ctx, b)
}

// countOf is the number of events in an event batch, from its header.
func countOf(msg jetstream.Msg) int {
	n, err := strconv.Atoi(msg.Headers().Get(wire.HeaderCount))
	if err != nil {
		return 1
	}
	return n
}

// backoff grows with the number of deliveries, capped at a minute.
func backoff(delivered uint64) time.Duration {
	d := time.Second << min(delivered, 6)
	return min(d, time.Minute)
}

// stop ends delivery, lets the sink flush what it holds, and returns.
func (r *sinkRunner) stop(ctx context.Context) error {
	if !r.started {
		return nil
	}
	// Drain: messages already pulled are still handed to the sink, so a graceful
	// restart does not wait ack_wait for their redelivery.
	if r.iter != nil {
		r.iter.Drain()
	}
	if r.runDone != nil {
		grace := time.NewTimer(5 * time.Second)
		defer grace.Stop()
		select {
		case <-r.runDone:
		case <-grace.C:
		case <-ctx.Done():
		}
	}
	if r.cancel != nil {
		r.cancel()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	err := r.sink.Stop(ctx)
	// The sink calls Done for everything it held before Stop returns; then the acker
	// drains the queue and ends.
	if r.acks != nil {
		close(r.acks)
		<-r.ackerDone
	}
	if r.delivered != nil {
		_ = r.delivered.Close()
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
