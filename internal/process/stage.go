package process

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/deadletter"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// ProcessingConsumer is the durable consumer that all processing workers, on every
// node, share as a work queue.
const ProcessingConsumer = "processing"

// Formats looks a format up by name.
type Formats func(name string) (parse.Format, bool)

// StageDeps is what the processing stage needs besides the config.
type StageDeps struct {
	Stream *stream.Stream
	// Formats and Types look formats and processor types up by name.
	Formats Formats
	Types   Types
	// Processors are the processors to run, in order (the config's list, with the
	// deprecated processing.validate appended as a validate step).
	Processors []*config.Processor
	// Letters stores dead letters (batched, with the DLQ's overflow policy).
	Letters  *deadletter.Writer
	Log      *slog.Logger
	Counters *component.Counters
	// Version and Hostname fill agent.version and agent.name.
	Version, Hostname string
}

// Stage is the processing stage: it consumes the intake stream as a work queue
// shared by every worker of every node, turns records into ECS documents (parse,
// normalize, the configured processors) and publishes them to the events stream. It
// acknowledges an intake message only after every document and dead letter derived
// from it is acknowledged by the stream.
//
// Start starts the workers and returns; Stop lets each worker finish the messages
// it fetched and returns before ctx's deadline. Stop is idempotent and safe without
// Start.
type Stage struct {
	st       *stream.Stream
	cfg      *config.Config
	formats  Formats
	types    Types
	procs    []*config.Processor
	letters  *deadletter.Writer
	log      *slog.Logger
	counters *component.Counters
	version  string
	hostname string

	cons   jetstream.Consumer
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewStage returns a processing stage for cfg.
func NewStage(cfg *config.Config, deps StageDeps) *Stage {
	return &Stage{st: deps.Stream, cfg: cfg, formats: deps.Formats, types: deps.Types, procs: deps.Processors, letters: deps.Letters,
		log: deps.Log, counters: deps.Counters, version: deps.Version, hostname: deps.Hostname}
}

// Start checks that the processors can be built, creates the shared consumer and
// starts the workers.
func (p *Stage) Start(ctx context.Context) error {
	if _, err := p.newChain(); err != nil {
		return err
	}
	cons, err := p.st.DeclareConsumer(ctx, stream.IntakeStream, jetstream.ConsumerConfig{
		Durable:       ProcessingConsumer,
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
		w, err := p.newWorker(i)
		if err != nil {
			cancel()
			p.wg.Wait()
			return err
		}
		p.wg.Go(func() { w.run(runCtx) })
	}
	p.wg.Go(func() { p.reclaim(runCtx) })
	return nil
}

// Stop lets every worker finish the messages it fetched, then returns.
func (p *Stage) Stop(ctx context.Context) error {
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
func (p *Stage) reclaim(ctx context.Context) {
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

func (p *Stage) reclaimOnce(ctx context.Context) error {
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

// newChain builds one worker's processor chain.
func (p *Stage) newChain() (*Chain, error) {
	return NewChain(p.procs, p.types, Deps{Log: p.log}, p.counters)
}

type worker struct {
	p     *Stage
	id    int
	chain *Chain
	norms map[string]*Normalizer // by source and format
	raw   []byte
	out   map[string]*outBatch // by dataset
	order []string
	// samples are the aggregation samples of threshold rules, by rule; they are
	// published with the record's events, before its intake message is acknowledged.
	samples    map[string]*outBatch
	sampleList []string
	// enc compresses event batches for the events stream
	// (processing.events_compression).
	enc *event.FrameEncoder
	// zscratch takes one compressed batch; its bytes are then copied, exactly sized,
	// into chunks, which stay referenced until the publishes that read them are
	// acknowledged (zused) and are then reused (zfree).
	zscratch     []byte
	zfree, zused [][]byte
}

// zchunk is the size of the chunks compressed event batches are kept in.
const zchunk = 4 << 20

// compressed returns body compressed for the events stream, in a chunk that stays
// valid until recycle.
func (w *worker) compressed(body []byte) []byte {
	if need := event.MaxEncodedLen(len(body)); cap(w.zscratch) < need {
		w.zscratch = make([]byte, 0, max(need, event.MaxEncodedLen(event.MaxBatchBytes)))
	}
	c := w.enc.Append(w.zscratch[:0], body)
	w.zscratch = c[:0]
	k := len(w.zused)
	if k == 0 || cap(w.zused[k-1])-len(w.zused[k-1]) < len(c) {
		var chunk []byte
		if n := len(w.zfree); n > 0 && cap(w.zfree[n-1]) >= len(c) {
			chunk, w.zfree = w.zfree[n-1][:0], w.zfree[:n-1]
		} else {
			chunk = make([]byte, 0, max(zchunk, len(c)))
		}
		w.zused = append(w.zused, chunk)
		k++
	}
	cur := w.zused[k-1]
	at := len(cur)
	cur = append(cur, c...)
	w.zused[k-1] = cur
	return cur[at:len(cur):len(cur)]
}

// recycle makes the used chunks free again: only once every publish that read them
// is acknowledged (a failed one may still be resent from its body), and keeping no
// more chunks than the last round used.
func (w *worker) recycle(acked bool) {
	if acked {
		keep := len(w.zused)
		for _, b := range w.zused {
			if len(w.zfree) < keep && cap(b) == zchunk {
				w.zfree = append(w.zfree, b)
			}
		}
	}
	clear(w.zused)
	w.zused = w.zused[:0]
}

type outBatch struct {
	buf   []byte
	count int
	chunk int
}

func (p *Stage) newWorker(id int) (*worker, error) {
	chain, err := p.newChain()
	if err != nil {
		return nil, err
	}
	enc, err := event.NewFrameEncoder(p.cfg.EventsEncoding())
	if err != nil {
		return nil, fmt.Errorf("processing.events_compression: %w", err)
	}
	return &worker{p: p, id: id, chain: chain, enc: enc, norms: map[string]*Normalizer{}, out: map[string]*outBatch{},
		samples: map[string]*outBatch{}}, nil
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		// The fetch holds what it got until it is full or its wait ends, before the
		// keep-alive can start: keep that wait well inside ack_wait.
		batch, err := w.p.cons.Fetch(w.p.cfg.Processing.Fetch, jetstream.FetchMaxWait(min(time.Second, w.p.cfg.Buffer.AckWait/4)),
			jetstream.FetchMaxBytes(w.p.fetchBytes()))
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
		stopKeepAlive := w.keepAlive(msgs)
		var pending wire.Pending
		var letters []*deadletter.Pending
		failed := make([]bool, len(msgs))
		for i, m := range msgs {
			ls, err := w.process(m, &pending)
			if errors.Is(err, component.ErrTooLarge) {
				// An event batch too large for the stream fails the same way on every
				// retry: dead-letter the intake message whole instead of looping.
				ls, err = []component.Letter{w.messageLetter(m, "process", "an event is larger than the stream's max payload: "+err.Error())}, nil
			}
			failed[i] = err != nil
			if err != nil {
				w.p.log.Warn("processing: message will be retried", "seq", seqOf(m), "err", err)
				continue
			}
			// One dead-letter message per stage and intake message: its ID is the same
			// when the message is processed again.
			letters = append(letters, w.p.letters.Start(ls))
			for _, l := range ls {
				w.p.counters.DeadLettered(l.Stage, 1)
			}
		}
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		pubErr := pending.Wait(wctx)
		for _, lp := range letters {
			pubErr = cmp.Or(pubErr, lp.Wait(wctx))
		}
		cancel()
		stopKeepAlive()
		w.recycle(pubErr == nil)
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

// fetchBytes bounds the intake bytes one worker fetches at a time: the workers'
// share of limits.memory (a sixteenth of it over all workers), but never less than
// the largest message the stream takes, which a smaller limit could not fetch at all.
func (p *Stage) fetchBytes() int {
	return max(p.cfg.Limits.Share(16)/p.cfg.Processing.Workers, p.st.MaxPayload()+64<<10)
}

// keepAlive tells the stream, every third of ack_wait, that msgs are still being
// worked on, so that a slow fetch (a large CloudTrail file, a stream that pushes
// back) is not redelivered to another worker meanwhile. The returned function stops
// it and waits until it has stopped.
func (w *worker) keepAlive(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	interval := max(w.p.cfg.Buffer.AckWait/3, 100*time.Millisecond)
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
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

// messageLetter is the dead letter of a whole intake message (its compressed body,
// as `vigil dlq replay` expects for IDs ending in ":msg").
func (w *worker) messageLetter(m jetstream.Msg, stage, reason string) component.Letter {
	raw := wire.ReadRaw(m.Subject(), m.Headers(), m.Data(), time.Now())
	return component.Letter{Stage: stage, Reason: reason, Source: raw.Source, Dataset: raw.Dataset, Format: raw.Format,
		Time: raw.Received, Original: m.Data(), ID: fmt.Sprintf("%d:%d:msg", w.p.st.Epoch(), seqOf(m))}
}

// process turns one intake message into event batches, whose publishes it starts on
// pending, and the dead letters it returns.
func (w *worker) process(m jetstream.Msg, pending *wire.Pending) ([]component.Letter, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	seq := md.Sequence.Stream
	raw := wire.ReadRaw(m.Subject(), m.Headers(), m.Data(), time.Now())
	norm, err := w.normalizer(raw.Source, raw.Format, raw.FormatOverride)
	if err != nil {
		// A record we cannot even pick a parser for is a dead letter, not a retry loop.
		return []component.Letter{w.messageLetter(m, "decode", err.Error())}, nil
	}
	epoch := w.p.st.Epoch()
	var replayed event.Origin
	hasOrigin := false
	if raw.Origin != "" {
		replayed, hasOrigin = wire.ParseOrigin(raw.Origin)
	}

	for _, ob := range w.out {
		ob.buf, ob.count, ob.chunk = ob.buf[:0], 0, 0
	}
	w.order = w.order[:0]
	for _, sb := range w.samples {
		sb.buf, sb.count, sb.chunk = sb.buf[:0], 0, 0
	}
	w.sampleList = w.sampleList[:0]
	var pubErr error
	flush := func(ds string, ob *outBatch) {
		if ob.count == 0 || pubErr != nil {
			return
		}
		msg := wire.EventsMsgCompressed(wire.Events{Dataset: ds, Source: raw.Source, Count: ob.count, Size: len(ob.buf)},
			w.enc.Encoding(), w.compressed(ob.buf))
		// The ID makes a re-publish after a crash a duplicate the stream drops
		// (inside its duplicate window) and the sink runners skip (after it).
		id := wire.EventsID(epoch, seq, ds, ob.chunk)
		if err := pending.Publish(w.p.st, msg, id); err != nil {
			pubErr = err
			return
		}
		w.p.counters.Sent(ob.count, len(ob.buf))
		ob.buf, ob.count = ob.buf[:0], 0
		ob.chunk++
	}
	flushSamples := func(rule string, sb *outBatch) {
		if sb.count == 0 || pubErr != nil {
			return
		}
		// Like event batches, the ID makes a re-processed record's samples a
		// duplicate the stream drops.
		id := wire.EventsID(epoch, seq, "agg."+rule, sb.chunk)
		if err := pending.Publish(w.p.st, wire.AggMsg(rule, sb.count, sb.buf), id); err != nil {
			pubErr = err
			return
		}
		sb.buf, sb.count = sb.buf[:0], 0
		sb.chunk++
	}
	var letters []component.Letter
	out := &workerOutput{w: w, flush: flush, flushSamples: flushSamples}
	records, bytes := 0, 0
	w.raw, err = event.DecodeRaw(w.raw, raw.Body, func(i int, rec []byte) error {
		records++
		bytes += len(rec)
		origin := event.Origin{Epoch: epoch, Seq: seq, Index: uint32(i)}
		if hasOrigin {
			origin = replayed
			origin.Index += uint32(i)
		}
		out.rejects = out.rejects[:0]
		r := Record{Data: rec, Origin: origin, Received: raw.Received, Dataset: raw.Dataset, Fields: raw.Fields}
		if i < len(raw.RecordFields) {
			r.RecordFields = raw.RecordFields[i]
		}
		if i < len(raw.Lines) {
			r.Line, r.LineField = raw.Lines[i], raw.LineField
		}
		_, perr := norm.Process(r, out)
		if len(out.rejects) == 0 && perr == nil {
			return nil // the common case: nothing to dead-letter, no origin to format
		}
		originStr := wire.FormatOrigin(origin)
		for _, r := range out.rejects {
			letters = append(letters, component.Letter{Stage: DLQStage(r.reason), Reason: r.reason.Error(), Source: raw.Source,
				Dataset: raw.Dataset, Format: raw.Format, Time: raw.Received, Original: r.original, Origin: originStr,
				Processor: processorOf(r.reason), ID: fmt.Sprintf("%d:%d:%d:%d", epoch, seq, i, r.part)})
		}
		if perr != nil {
			if pubErr != nil {
				return pubErr
			}
			letters = append(letters, component.Letter{Stage: DLQStage(perr), Reason: perr.Error(), Source: raw.Source,
				Dataset: raw.Dataset, Format: raw.Format, Time: raw.Received, Original: append([]byte(nil), rec...),
				Origin: originStr, ID: fmt.Sprintf("%d:%d:%d:record", epoch, seq, i)})
		}
		return nil
	})
	w.p.counters.Received(records, bytes)
	if err != nil {
		if pubErr != nil {
			return nil, pubErr
		}
		// The batch itself is corrupt: dead-letter the message body as it is.
		letters = append(letters, component.Letter{Stage: "decode", Reason: err.Error(), Source: raw.Source, Dataset: raw.Dataset,
			Format: raw.Format, Time: raw.Received, Original: append([]byte(nil), m.Data()...), ID: fmt.Sprintf("%d:%d:msg", epoch, seq)})
	}
	for _, ds := range w.order {
		flush(ds, w.out[ds])
	}
	for _, rule := range w.sampleList {
		flushSamples(rule, w.samples[rule])
	}
	if pubErr != nil {
		return nil, pubErr
	}
	return letters, nil
}

// processorOf returns "index:type" of the processor that rejected an event.
func processorOf(err error) string {
	var se *StepError
	if errors.As(err, &se) {
		return strconv.Itoa(se.Index) + ":" + se.Type
	}
	return ""
}

type rejectedPart struct {
	part     int
	original []byte
	reason   error
}

// workerOutput collects a record's documents into per-dataset batches.
type workerOutput struct {
	w            *worker
	flush        func(ds string, ob *outBatch)
	flushSamples func(rule string, sb *outBatch)
	rejects      []rejectedPart
}

var _ SampleOutput = (*workerOutput)(nil)

// Sample collects one aggregation sample of rule (see Item.Sample).
func (o *workerOutput) Sample(rule string, b []byte) error {
	w := o.w
	sb, ok := w.samples[rule]
	if !ok {
		sb = &outBatch{}
		w.samples[rule] = sb
	}
	if sb.count == 0 && sb.chunk == 0 {
		w.sampleList = append(w.sampleList, rule)
	}
	if sb.count > 0 && len(sb.buf)+len(b)+binary.MaxVarintLen64 > event.MaxBatchBytes {
		o.flushSamples(rule, sb)
	}
	sb.buf = binary.AppendUvarint(sb.buf, uint64(len(b)))
	sb.buf = append(sb.buf, b...)
	sb.count++
	return nil
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
	o.rejects = append(o.rejects, rejectedPart{part: part, original: append([]byte(nil), original...), reason: reason})
}

func (o *workerOutput) Skip(reason string) { o.w.p.counters.Discarded(reason, 1) }

// normalizer returns the worker's normalizer for a source, building it on first use.
//
// The source's current config decides the format, so re-processing or replaying after
// a config fix uses the fix; the batch's own format is used when it says it overrides
// the source's (text lines posted to a JSON source) or the source is no longer
// configured.
func (w *worker) normalizer(source, format string, override bool) (*Normalizer, error) {
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
	n := &Normalizer{Source: source, Dataset: dataset, FormatDataset: f.Dataset, KeepOriginal: keep,
		Parser: parser, AgentName: w.p.hostname, AgentVersion: w.p.version}
	n.Chain = w.chain
	w.norms[key] = n
	return n, nil
}
