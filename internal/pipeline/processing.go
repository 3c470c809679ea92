package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/validate"
	"github.com/vigil-sec/vigil/internal/stream"
)

// processingConsumer is the durable consumer that all processing workers, on every
// node, share as a work queue.
const processingConsumer = "processing"

// Formats looks a format up by name.
type Formats func(name string) (parse.Format, bool)

// processing consumes the intake stream, turns records into ECS documents and
// publishes them to the events stream; it acknowledges an intake message only after
// every document and dead letter derived from it is acknowledged by the stream.
type processing struct {
	st       *stream.Stream
	cfg      *config.Config
	formats  Formats
	log      *slog.Logger
	counters *component.Counters
	version  string
	hostname string

	// validator checks events against JSON Schemas; nil when validation is off.
	validator *validate.Validator

	cons   jetstream.Consumer
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (p *processing) start(ctx context.Context) error {
	if p.cfg.Processing.Validate.Enabled {
		v, err := validate.New(&p.cfg.Processing.Validate)
		if err != nil {
			return fmt.Errorf("processing.validate: %w", err)
		}
		p.validator = v
	}
	cons, err := p.st.JetStream().CreateOrUpdateConsumer(ctx, stream.IntakeStream, jetstream.ConsumerConfig{
		Durable:       processingConsumer,
		Description:   "Vigil processing: decode, parse, normalize",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.cfg.Buffer.AckWait,
		MaxAckPending: max(1024, p.cfg.Processing.Workers*p.cfg.Processing.Fetch*4),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      0,
	})
	if err != nil {
		return fmt.Errorf("processing: consumer: %w", err)
	}
	p.cons = cons
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for i := range p.cfg.Processing.Workers {
		w := p.newWorker(i)
		p.wg.Go(func() { w.run(runCtx) })
	}
	p.wg.Go(func() { p.reclaim(runCtx) })
	return nil
}

// stop lets every worker finish the messages it fetched, then returns.
func (p *processing) stop(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("processing: workers did not finish before the deadline: %w", ctx.Err())
	}
}

// reclaim keeps the intake stream from filling with records already processed:
// above 80% of its byte limit, it purges what every processing worker has
// acknowledged. Unprocessed records are never removed; if they alone fill the
// stream, sources push back.
func (p *processing) reclaim(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.reclaimOnce(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("intake reclaim failed", "err", err)
		}
	}
}

func (p *processing) reclaimOnce(ctx context.Context) error {
	s, err := p.st.JetStream().Stream(ctx, stream.IntakeStream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if info.Config.MaxBytes <= 0 || float64(info.State.Bytes) < 0.8*float64(info.Config.MaxBytes) {
		return nil
	}
	ci, err := p.cons.Info(ctx)
	if err != nil {
		return err
	}
	floor := ci.AckFloor.Stream
	if floor < info.State.FirstSeq {
		return nil
	}
	p.log.Info("intake stream above 80% of max_bytes: purging processed records", "up_to_seq", floor)
	return s.Purge(ctx, jetstream.WithPurgeSequence(floor+1))
}

type worker struct {
	p     *processing
	id    int
	norms map[string]*process.Normalizer // by source
	raw   []byte
	out   map[string]*outBatch // by dataset
	order []string
}

type outBatch struct {
	buf   []byte
	count int
	chunk int
}

func (p *processing) newWorker(id int) *worker {
	return &worker{p: p, id: id, norms: map[string]*process.Normalizer{}, out: map[string]*outBatch{}}
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		batch, err := w.p.cons.Fetch(w.p.cfg.Processing.Fetch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() == nil {
				w.p.log.Warn("processing: fetch failed", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		// Finish what was fetched even when stopping: it is already taken from the
		// work queue, and acknowledging now spares a redelivery after ack_wait.
		var futures []jetstream.PubAckFuture
		var failed []bool
		for _, m := range msgs {
			fs, err := w.process(m)
			futures = append(futures, fs...)
			if errors.Is(err, component.ErrTooLarge) {
				// An event batch too large for the stream fails the same way on every
				// retry: dead-letter the intake message whole instead of looping.
				f, lerr := w.deadLetterMessage(m, "an event is larger than the stream's max payload: "+err.Error())
				if lerr == nil {
					futures = append(futures, f)
					err = nil
				}
			}
			failed = append(failed, err != nil)
			if err != nil {
				w.p.log.Warn("processing: message will be retried", "seq", seqOf(m), "err", err)
			}
		}
		pubErr := waitAll(futures, 30*time.Second)
		if pubErr != nil {
			w.p.counters.Error("publish")
			w.p.log.Warn("processing: publishing to the events stream failed; will retry", "err", pubErr)
		}
		for i, m := range msgs {
			if failed[i] || pubErr != nil {
				_ = m.NakWithDelay(2 * time.Second)
				continue
			}
			_ = m.Ack()
		}
	}
}

func seqOf(m jetstream.Msg) uint64 {
	if md, err := m.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitAll waits for every publish acknowledgement and returns the first error.
func waitAll(fs []jetstream.PubAckFuture, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var first error
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = stream.Classify(err)
			}
		case <-deadline.C:
			return fmt.Errorf("%w: no acknowledgement within %s", component.ErrUnavailable, timeout)
		}
	}
	return first
}

// deadLetterMessage publishes a whole intake message (its compressed body, as `vigil
// dlq replay` expects for IDs ending in ":msg") to vigil.dlq.process.
func (w *worker) deadLetterMessage(m jetstream.Msg, reason string) (jetstream.PubAckFuture, error) {
	seq := seqOf(m)
	h := m.Headers()
	l := component.Letter{Stage: "process", Reason: reason, Source: stream.SourceOf(m.Subject()),
		Dataset: h.Get(event.HeaderDataset), Format: h.Get(event.HeaderFormat), Time: time.Now(),
		Original: m.Data(), ID: fmt.Sprintf("%d:%d:msg", w.p.st.Epoch(), seq)}
	f, err := w.p.st.PublishAsync(LetterMsg(l), l.ID)
	if err != nil {
		return nil, err
	}
	w.p.counters.DeadLettered("process", 1)
	return f, nil
}

// process turns one intake message into published event batches and dead letters,
// returning their publish futures.
func (w *worker) process(m jetstream.Msg) ([]jetstream.PubAckFuture, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	seq := md.Sequence.Stream
	h := m.Headers()
	source := stream.SourceOf(m.Subject())
	received := time.Now()
	if ns, err := strconv.ParseInt(h.Get(event.HeaderReceived), 10, 64); err == nil {
		received = time.Unix(0, ns)
	}
	dataset := h.Get(event.HeaderDataset)
	format := h.Get(event.HeaderFormat)
	norm, err := w.normalizer(source, format, h.Get(event.HeaderFormatOverride) == "1")
	if err != nil {
		// A record we cannot even pick a parser for is a dead letter, not a retry loop.
		letter := component.Letter{Stage: "decode", Reason: err.Error(), Source: source, Dataset: dataset, Format: format,
			Time: received, Original: m.Data(), ID: fmt.Sprintf("%d:%d:msg", w.p.st.Epoch(), seq)}
		f, perr := w.p.st.PublishAsync(LetterMsg(letter), letter.ID)
		if perr != nil {
			return nil, perr
		}
		w.p.counters.DeadLettered("decode", 1)
		return []jetstream.PubAckFuture{f}, nil
	}
	epoch := w.p.st.Epoch()
	replayed, hasOrigin := parseOrigin(h.Get(event.HeaderOrigin))

	for _, ob := range w.out {
		ob.buf, ob.count, ob.chunk = ob.buf[:0], 0, 0
	}
	w.order = w.order[:0]
	var futures []jetstream.PubAckFuture
	var pubErr error
	flush := func(ds string, ob *outBatch) {
		if ob.count == 0 || pubErr != nil {
			return
		}
		msg := nats.NewMsg(stream.EventsSubject(ds))
		msg.Header.Set(event.HeaderEncoding, event.EncodingS2)
		msg.Header.Set(event.HeaderDataset, ds)
		msg.Header.Set(event.HeaderCount, strconv.Itoa(ob.count))
		msg.Header.Set(event.HeaderSource, source)
		msg.Data = event.Compress(ob.buf)
		// The ID makes a re-publish after a crash a duplicate the stream drops.
		id := fmt.Sprintf("%d:%d:%s:%d", epoch, seq, ds, ob.chunk)
		f, err := w.p.st.PublishAsync(msg, id)
		if err != nil {
			pubErr = err
			return
		}
		futures = append(futures, f)
		w.p.counters.Sent(ob.count, len(ob.buf))
		ob.buf, ob.count = ob.buf[:0], 0
		ob.chunk++
	}
	var letters []component.Letter
	out := &workerOutput{w: w, flush: flush}
	records, bytes := 0, 0
	w.raw, err = event.DecodeRaw(w.raw, m.Data(), func(i int, rec []byte) error {
		records++
		bytes += len(rec)
		origin := event.Origin{Epoch: epoch, Seq: seq, Index: uint32(i)}
		if hasOrigin {
			origin = replayed
			origin.Index += uint32(i)
		}
		out.index, out.origin, out.rejects = i, origin, out.rejects[:0]
		_, perr := norm.Process(process.Record{Data: rec, Origin: origin, Received: received, Dataset: dataset}, out)
		originStr := fmt.Sprintf("%d:%d:%d", origin.Epoch, origin.Seq, origin.Index)
		for _, r := range out.rejects {
			letters = append(letters, component.Letter{Stage: r.stage, Reason: r.reason, Source: source, Dataset: dataset,
				Format: format, Time: received, Original: r.original, Origin: originStr,
				ID: fmt.Sprintf("%d:%d:%d:%d", epoch, seq, i, r.part)})
		}
		if perr != nil {
			if pubErr != nil {
				return pubErr
			}
			stage := "parse"
			if process.IsDecodeError(perr) {
				stage = "decode"
			}
			letters = append(letters, component.Letter{Stage: stage, Reason: perr.Error(), Source: source, Dataset: dataset,
				Format: format, Time: received, Original: append([]byte(nil), rec...), Origin: originStr,
				ID: fmt.Sprintf("%d:%d:%d:record", epoch, seq, i)})
		}
		return nil
	})
	w.p.counters.Received(records, bytes)
	if err != nil {
		if pubErr != nil {
			return futures, pubErr
		}
		// The batch itself is corrupt: dead-letter the message body as it is.
		letters = append(letters, component.Letter{Stage: "decode", Reason: err.Error(), Source: source, Dataset: dataset,
			Format: format, Time: received, Original: append([]byte(nil), m.Data()...), ID: fmt.Sprintf("%d:%d:msg", epoch, seq)})
	}
	for _, ds := range w.order {
		flush(ds, w.out[ds])
	}
	if pubErr != nil {
		return futures, pubErr
	}
	for _, l := range letters {
		f, err := w.p.st.PublishAsync(LetterMsg(l), l.ID)
		if err != nil {
			return futures, err
		}
		futures = append(futures, f)
		w.p.counters.DeadLettered(l.Stage, 1)
	}
	return futures, nil
}

type rejectedPart struct {
	part     int
	original []byte
	reason   string
	stage    string
}

// workerOutput collects a record's documents into per-dataset batches.
type workerOutput struct {
	w       *worker
	flush   func(ds string, ob *outBatch)
	index   int
	origin  event.Origin
	rejects []rejectedPart
}

func (o *workerOutput) Event(dataset string, doc []byte) error {
	w := o.w
	ob, ok := w.out[dataset]
	if !ok {
		ob = &outBatch{}
		w.out[dataset] = ob
	}
	if ob.count == 0 && ob.chunk == 0 {
		w.order = append(w.order, dataset)
	}
	if ob.count > 0 && len(ob.buf)+len(doc)+1 > event.MaxBatchBytes {
		o.flush(dataset, ob)
	}
	ob.buf = append(ob.buf, doc...)
	ob.buf = append(ob.buf, '\n')
	ob.count++
	return nil
}

func (o *workerOutput) Reject(part int, original []byte, reason error) {
	stage := "parse"
	if process.IsValidationError(reason) {
		stage = "validate"
	}
	o.rejects = append(o.rejects, rejectedPart{part: part, original: append([]byte(nil), original...), reason: reason.Error(), stage: stage})
}

func (o *workerOutput) Skip(reason string) { o.w.p.counters.Discarded(reason, 1) }

// normalizer returns the worker's normalizer for a source, building it on first use.
//
// The source's current config decides the format, so re-processing or replaying after
// a config fix uses the fix; the batch's own format is used when it says it overrides
// the source's (text lines posted to a JSON source) or the source is no longer
// configured.
func (w *worker) normalizer(source, format string, override bool) (*process.Normalizer, error) {
	src, known := w.p.cfg.Source(source)
	if known && !override {
		format = src.Format
	}
	key := source + "\x00" + format
	if n, ok := w.norms[key]; ok {
		return n, nil
	}
	var opts parse.Config
	keep := true
	dataset := ""
	if known {
		keep, dataset = src.KeepOriginal, src.Dataset
		if format == "" || format == src.Format {
			format, opts = src.Format, src.FormatOptions
		}
	}
	f, ok := w.p.formats(format)
	if !ok {
		return nil, fmt.Errorf("unknown format %q for source %q", format, source)
	}
	if opts == nil {
		opts = f.NewConfig()
	}
	parser, err := f.New(opts)
	if err != nil {
		return nil, fmt.Errorf("format %q: %w", format, err)
	}
	n := &process.Normalizer{Source: source, Dataset: dataset, FormatDataset: f.Dataset, KeepOriginal: keep,
		Parser: parser, AgentName: w.p.hostname, AgentVersion: w.p.version}
	if w.p.validator != nil {
		n.Validate = w.p.validator.Check
	}
	w.norms[key] = n
	return n, nil
}

// parseOrigin reads "epoch:seq:index".
func parseOrigin(s string) (event.Origin, bool) {
	if s == "" {
		return event.Origin{}, false
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return event.Origin{}, false
	}
	e, err1 := strconv.ParseInt(parts[0], 10, 64)
	q, err2 := strconv.ParseUint(parts[1], 10, 64)
	i, err3 := strconv.ParseUint(parts[2], 10, 32)
	if err := errors.Join(err1, err2, err3); err != nil {
		return event.Origin{}, false
	}
	return event.Origin{Epoch: e, Seq: q, Index: uint32(i)}, true
}
