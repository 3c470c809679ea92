package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/deadletter"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// sinkRunner feeds one sink from its own durable consumer of the events stream, so a
// slow or dead destination holds back nobody else.
type sinkRunner struct {
	st       *stream.Stream
	cfg      *config.Sink
	buffer   config.Buffer
	sink     component.Sink
	log      *slog.Logger
	counters *component.Counters
	letters  *deadletter.Writer

	// held are the messages handed to the sink and not yet done; they are kept alive
	// with InProgress so a sink that holds a batch through an outage longer than
	// ack_wait does not get it redelivered (and sent twice) meanwhile.
	heldMu sync.Mutex
	held   map[uint64]jetstream.Msg

	// delivered and acks: see deliveredLog. Done(nil) queues the message on acks; the
	// acker records a group of sequences with one fsync, then acknowledges them.
	dataDir   string
	delivered *deliveredLog
	acks      chan jetstream.Msg

	ackerDone chan struct{}
	runDone   chan struct{} // closed when run returns

	cons   jetstream.Consumer
	iter   jetstream.MessagesContext
	cancel context.CancelFunc
	wg     sync.WaitGroup
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

func (r *sinkRunner) start(ctx context.Context) error {
	d, err := openDeliveredLog(filepath.Join(r.dataDir, "sinks", r.cfg.Name+".delivered"))
	if err != nil {
		return fmt.Errorf("sink %s: delivered log: %w", r.cfg.Name, err)
	}
	r.delivered = d
	r.acks = make(chan jetstream.Msg, 1024)
	if err := r.sink.Start(ctx); err != nil {
		return fmt.Errorf("sink %s: %w", r.cfg.Name, err)
	}
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
	cons, err := r.st.JetStream().CreateOrUpdateConsumer(ctx, stream.EventsStream, cc)
	if err != nil {
		return fmt.Errorf("sink %s: consumer: %w", r.cfg.Name, err)
	}
	r.cons = cons
	iter, err := cons.Messages(jetstream.PullMaxMessages(8))
	if err != nil {
		return fmt.Errorf("sink %s: %w", r.cfg.Name, err)
	}
	r.iter = iter
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.held = map[uint64]jetstream.Msg{}
	r.runDone = make(chan struct{})
	r.wg.Go(func() { defer close(r.runDone); r.run(runCtx) })
	r.wg.Go(func() { r.keepAlive(runCtx) })
	r.ackerDone = make(chan struct{})
	go func() { defer close(r.ackerDone); r.acker() }()
	return nil
}

// acker records delivered sequences durably, then acknowledges their messages. It
// runs until acks is closed (after the sink has stopped) and drains it.
func (r *sinkRunner) acker() {
	var group []jetstream.Msg
	var seqs []uint64
	prune := time.NewTicker(30 * time.Second)
	defer prune.Stop()
	for {
		var m jetstream.Msg
		var ok bool
		select {
		case m, ok = <-r.acks:
		case <-prune.C:
			r.prune()
			continue
		}
		if !ok {
			return
		}
		group, seqs = append(group[:0], m), seqs[:0]
	more:
		for len(group) < 256 {
			select {
			case m, ok := <-r.acks:
				if !ok {
					break more
				}
				group = append(group, m)
			default:
				break more
			}
		}
		for _, m := range group {
			if md, err := m.Metadata(); err == nil {
				seqs = append(seqs, md.Sequence.Stream)
			}
		}
		if err := r.delivered.Add(seqs); err != nil {
			// Without the record a crash could deliver these again; acknowledging
			// anyway is still right (they are delivered), so only count it.
			r.counters.Error("delivered_log")
			r.log.Warn("sink: cannot record delivered batches", "sink", r.cfg.Name, "err", err)
		}
		for _, m := range group {
			_ = m.Ack()
		}
	}
}

func (r *sinkRunner) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := r.cons.Info(ctx)
	if err != nil {
		return
	}
	if err := r.delivered.Prune(info.AckFloor.Stream); err != nil {
		r.log.Warn("sink: pruning the delivered log failed", "sink", r.cfg.Name, "err", err)
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
		msg, err := r.iter.Next()
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
		r.heldMu.Lock()
		_, busy := r.held[md.Sequence.Stream]
		r.heldMu.Unlock()
		if busy {
			// A redelivery of a batch the sink still holds (it waited in the pull
			// buffer past ack_wait): the held copy's outcome settles this sequence.
			r.counters.Discarded("redelivered_while_held", 1)
			continue
		}
		if r.delivered.Has(md.Sequence.Stream) {
			// Delivered before a crash lost the stream's record of the acknowledgement
			// (a server restarted from lazily saved consumer state may even count it as
			// a first delivery, so every message is checked).
			r.counters.Discarded("already_delivered", 1)
			_ = msg.Ack()
			continue
		}
		// The sink owns the batch's bytes: ReadEvents decodes into a fresh buffer.
		evs, err := wire.ReadEvents(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			// A batch we wrote ourselves and cannot read is a bug or corruption: keep it
			// for inspection in the DLQ instead of retrying forever.
			r.counters.Error("corrupt_batch")
			r.log.Error("sink: corrupt event batch, dead-lettering it", "sink", r.cfg.Name, "seq", md.Sequence.Stream, "err", err)
			letter := component.Letter{Stage: "sink", Reason: "corrupt event batch: " + err.Error(), Source: evs.Source,
				Dataset: dataset, Original: msg.Data(), ID: fmt.Sprintf("sink:%s:%d", r.cfg.Name, md.Sequence.Stream)}
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
		seq := md.Sequence.Stream
		r.heldMu.Lock()
		r.held[seq] = m
		r.heldMu.Unlock()
		b := component.NewBatch(dataset, seq, md.Timestamp, docs, count, func(err error) {
			r.heldMu.Lock()
			delete(r.held, seq)
			r.heldMu.Unlock()
			if err == nil {
				r.acks <- m
				return
			}
			r.counters.Retry()
			_ = m.NakWithDelay(backoff(attempts))
		})
		b.Redelivered = md.NumDelivered > 1
		r.counters.Received(count, len(docs))
		if err := r.consume(ctx, b); err != nil {
			r.log.Error("sink: cannot take batches", "sink", r.cfg.Name, "err", err)
			b.Done(err)
			sleep(ctx, time.Second)
		}
	}
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

// backoff grows with the number of deliveries, capped at a minute.
func backoff(delivered uint64) time.Duration {
	d := time.Second << min(delivered, 6)
	return min(d, time.Minute)
}

// stop ends delivery, lets the sink flush what it holds, and returns.
func (r *sinkRunner) stop(ctx context.Context) error {
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
