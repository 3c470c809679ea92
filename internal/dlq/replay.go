package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// Metrics count what replays did. A nil *Metrics counts nothing.
type Metrics struct {
	replayed *prometheus.CounterVec
	skipped  *prometheus.CounterVec
	errors   prometheus.Counter
}

// NewMetrics creates the replay counters and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "vigil", Name: "dlq_replayed_total",
			Help: "Dead letters fed back into the pipeline and removed from the DLQ, by stage."}, []string{"stage"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "vigil", Name: "dlq_replay_skipped_total",
			Help: "Dead letters a replay left in the DLQ because they cannot be replayed, by stage."}, []string{"stage"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "vigil", Name: "dlq_replay_errors_total",
			Help: "Replay chunks that stopped on a stream error (nothing is lost: the letters stay in the DLQ)."}),
	}
	reg.MustRegister(m.replayed, m.skipped, m.errors)
	return m
}

// ReplayOptions tune one replay call.
type ReplayOptions struct {
	// Limit is the most letters one call replays (DefaultLimit when 0, at most
	// MaxLimit); callers loop, passing Next as Filter.From, until Done.
	Limit int
	// Format, when set, replaces the stored format of intake letters: the way to
	// re-parse records after the source's format was changed in the config.
	Format string
}

// Limits of one replay call.
const (
	DefaultLimit = 500
	MaxLimit     = 10000
	// maxChunkBytes bounds the letters one call holds in memory.
	maxChunkBytes = 32 << 20
)

// ReplayResult is the outcome of one replay call.
type ReplayResult struct {
	// Replayed letters were stored again (in intake, or in the events stream for
	// sink letters) and then removed from the DLQ.
	Replayed int `json:"replayed"`
	// Duplicates of them had been stored by an earlier, interrupted replay; the
	// stream dropped the second copy.
	Duplicates int `json:"duplicates,omitempty"`
	// Skipped letters cannot be replayed (see Skips) and stay in the DLQ.
	Skipped int      `json:"skipped"`
	Skips   []string `json:"skips,omitempty"`
	// Remaining is how many selected letters after Next are left to replay.
	Remaining int `json:"remaining"`
	// Next is the DLQ sequence to continue from; UpTo the bound this replay keeps.
	Next uint64 `json:"next"`
	UpTo uint64 `json:"up_to"`
	// Done is true when no selected letter is left to try.
	Done bool `json:"done"`
}

// maxSkips bounds the skip reasons reported by one call.
const maxSkips = 20

// Replay feeds up to opts.Limit letters that f selects back into the pipeline and
// removes each from the DLQ once the stream acknowledged its copy. Each copy carries
// a message ID derived from the letter's DLQ position, so a replay interrupted
// between the two steps and run again (within the duplicate window) stores nothing
// twice. On error, letters whose copy was acknowledged are removed and the others
// stay; the result says how far it got.
func Replay(ctx context.Context, st *stream.Stream, f Filter, opts ReplayOptions, m *Metrics) (ReplayResult, error) {
	var res ReplayResult
	if err := f.Validate(); err != nil {
		return res, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	info, err := dlqInfo(ctx, st)
	if err != nil {
		return res, err
	}
	if f.UpTo == 0 || f.UpTo > info.State.LastSeq {
		f.UpTo = info.State.LastSeq
	}
	res.UpTo, res.Next = f.UpTo, f.From
	if f.UpTo == 0 || f.From > f.UpTo {
		res.Done = true
		return res, nil
	}
	epoch := info.Created.UnixNano()

	var chunk []*letter
	held := 0
	complete, err := scan(ctx, st, f, false, func(l *letter) bool {
		chunk = append(chunk, l)
		held += len(l.data)
		// The letters of one message are replayed together: it is removed whole.
		return len(chunk) < limit && held < maxChunkBytes || l.index < l.count-1
	})
	if err != nil {
		m.countError()
		return res, err
	}

	type pending struct {
		l   *letter
		fut jetstream.PubAckFuture
	}
	var inflight []pending
	skip := func(l *letter, why string) {
		res.Skipped++
		if len(res.Skips) < maxSkips {
			res.Skips = append(res.Skips, fmt.Sprintf("seq %d: %s", l.seq, why))
		}
		m.countSkip(l.stage)
	}
	var pubErr error
	for _, l := range chunk {
		msg, err := replayMsg(l, opts.Format)
		if err != nil {
			skip(l, err.Error())
			continue
		}
		fut, err := st.PublishAsync(msg, replayID(epoch, l))
		if errors.Is(err, component.ErrTooLarge) {
			skip(l, err.Error())
			continue
		}
		if err != nil {
			pubErr = err
			break
		}
		inflight = append(inflight, pending{l, fut})
	}

	dlq, err := st.JetStream().Stream(ctx, stream.DLQStream)
	if err != nil {
		m.countError()
		return res, fmt.Errorf("dlq: %s: %w", stream.DLQStream, err)
	}
	deadline := time.NewTimer(st.PublishTimeout())
	defer deadline.Stop()
	// Each DLQ message goes once all its letters are stored again; one whose letters
	// were replayed only in part is replaced by a message of the rest.
	type msgState struct {
		count, replayed int
		rest            []*letter
	}
	msgs := map[uint64]*msgState{}
	var order []uint64
	for _, l := range chunk {
		ms, ok := msgs[l.seq]
		if !ok {
			ms = &msgState{count: l.count}
			msgs[l.seq] = ms
			order = append(order, l.seq)
		}
		ms.rest = append(ms.rest, l)
	}
	for _, p := range inflight {
		var ack *jetstream.PubAck
		select {
		case ack = <-p.fut.Ok():
		case err := <-p.fut.Err():
			pubErr = cmpOr(pubErr, wire.Classify(err))
		case <-deadline.C:
			pubErr = cmpOr(pubErr, fmt.Errorf("%w: no acknowledgement within %s", component.ErrUnavailable, st.PublishTimeout()))
		case <-ctx.Done():
			pubErr = cmpOr(pubErr, fmt.Errorf("%w: %v", component.ErrUnavailable, ctx.Err()))
		}
		if ack == nil {
			continue
		}
		ms := msgs[p.l.seq]
		ms.replayed++
		ms.rest = slices.DeleteFunc(ms.rest, func(x *letter) bool { return x == p.l })
		res.Replayed++
		if ack.Duplicate {
			res.Duplicates++
		}
		m.countReplayed(p.l.stage)
	}
	for _, seq := range order {
		ms := msgs[seq]
		if ms.replayed == 0 {
			continue
		}
		if len(ms.rest) > 0 {
			// Keep the letters that stay (skipped or not acknowledged) in a message of
			// their own before the old one goes.
			rest := make([]component.Letter, len(ms.rest))
			for i, l := range ms.rest {
				rest[i] = l.componentLetter()
			}
			id := "dlq-rest:" + strconv.FormatInt(epoch, 10) + ":" + strconv.FormatUint(seq, 10)
			if _, err := st.Publish(ctx, wire.LettersMsg(rest), id); err != nil {
				pubErr = cmpOr(pubErr, fmt.Errorf("dlq: keep the letters of %d that were not replayed: %w", seq, err))
				continue
			}
		}
		// Only now, with the copies stored, may the message go.
		if err := dlq.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			pubErr = cmpOr(pubErr, fmt.Errorf("dlq: remove replayed letter %d: %w", seq, err))
		}
	}
	if pubErr != nil {
		m.countError()
		return res, fmt.Errorf("dlq: replay stopped after %d letter(s): %w", res.Replayed, pubErr)
	}
	if complete {
		res.Done, res.Next = true, 0
		return res, nil
	}
	res.Next = chunk[len(chunk)-1].seq + 1
	rest := f
	rest.From = res.Next
	_, err = scan(ctx, st, rest, true, func(*letter) bool { res.Remaining++; return true })
	if err != nil {
		return res, err
	}
	res.Done = res.Remaining == 0
	return res, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// ReplayID is the message ID of the replayed copy of the letter at DLQ sequence seq;
// epoch is the DLQ stream's creation time, so a recreated stream never reuses IDs.
func ReplayID(epoch int64, seq uint64) string {
	return "dlq-replay:" + strconv.FormatInt(epoch, 10) + ":" + strconv.FormatUint(seq, 10)
}

// replayID is ReplayID for a letter, with its index when it shares its message. A
// letter kept in a rest message after a partial replay gets a new sequence, and so
// a new ID; what was replayed of its old message is gone from the DLQ.
func replayID(epoch int64, l *letter) string {
	if l.count <= 1 {
		return ReplayID(epoch, l.seq)
	}
	return ReplayID(epoch, l.seq) + ":" + strconv.Itoa(l.index)
}

// replayMsg builds the message that puts a letter back into the pipeline, or says
// why it cannot be replayed.
func replayMsg(l *letter, format string) (*nats.Msg, error) {
	if l.stage == "sink" {
		return sinkReplayMsg(l)
	}
	if l.source == "" || !validToken(l.source) {
		return nil, fmt.Errorf("no valid source on the letter (%q): cannot tell which intake subject to use", l.source)
	}
	raw := wire.Raw{Source: l.source, Dataset: l.dataset, Origin: l.origin, Count: 1}
	if strings.HasSuffix(l.msgID, ":msg") {
		// Processing dead-letters a whole intake message it cannot handle (unknown
		// format, corrupt batch) as its compressed body; replay it as it is.
		n := 0
		if _, err := event.DecodeRaw(nil, l.data, func(int, []byte) error { n++; return nil }); err != nil {
			return nil, fmt.Errorf("the stored intake batch is corrupt (%v); replaying it would fail the same way", err)
		}
		raw.Body, raw.Count = l.data, n
	} else {
		var b event.RawBatch
		b.Add(l.data)
		raw.Body = b.Encode()
	}
	if format != "" {
		// An explicit --format wins over the source's configured format.
		raw.Format, raw.FormatOverride = format, true
	} else {
		// Otherwise the source's current config decides (the usual fix is a config
		// change); the letter's format only serves a source no longer configured.
		raw.Format = l.format
	}
	raw.Received = l.stored
	if ns, err := strconv.ParseInt(l.received, 10, 64); err == nil {
		raw.Received = time.Unix(0, ns)
	}
	return wire.RawMsg(raw), nil
}

// sinkReplayMsg puts an ECS document a destination rejected back into the events
// stream as a batch of one. Every sink reading its dataset gets it again.
func sinkReplayMsg(l *letter) (*nats.Msg, error) {
	if l.dataset == "" || !validToken(l.dataset) {
		return nil, fmt.Errorf("no valid dataset on the sink letter (%q)", l.dataset)
	}
	doc := bytes.TrimSpace(l.data)
	if len(doc) == 0 || doc[0] != '{' || !json.Valid(doc) {
		return nil, errors.New("the letter does not hold an ECS JSON document (a corrupt event batch?)")
	}
	var line bytes.Buffer
	line.Grow(len(doc) + 1)
	// An event batch is one document per line; a document stored pretty-printed is
	// made one line again.
	if err := json.Compact(&line, doc); err != nil {
		return nil, fmt.Errorf("the letter's document: %w", err)
	}
	line.WriteByte('\n')
	msg := wire.EventsMsg(wire.Events{Dataset: l.dataset, Source: l.source, Count: 1, Docs: line.Bytes()})
	return msg, nil
}

func (m *Metrics) countReplayed(stage string) {
	if m != nil {
		m.replayed.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) countSkip(stage string) {
	if m != nil {
		m.skipped.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) countError() {
	if m != nil {
		m.errors.Inc()
	}
}
