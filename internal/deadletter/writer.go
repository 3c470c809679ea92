// Package deadletter stores dead letters: batched per stage and source, with the
// dead-letter stream's overflow policy applied when it is full. internal/dlq reads,
// lists and replays them.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// Writer stores dead letters for every stage of a node. It batches letters of one
// stage and source into one stream message (so a flood of bad records costs one
// write per batch, not one per record), and applies the DLQ's overflow policy when
// the stream is full: a full dead-letter stream never stops good events. It is safe
// for concurrent use.
type Writer struct {
	st        *stream.Stream
	policy    string
	log       *slog.Logger
	discarded *prometheus.CounterVec

	mu       sync.Mutex
	lastWarn time.Time
}

// NewWriter returns a writer with cfg's overflow policy; reg gets
// vigil_dlq_discarded_total.
func NewWriter(st *stream.Stream, cfg config.DLQRetention, reg prometheus.Registerer, log *slog.Logger) *Writer {
	w := &Writer{st: st, policy: cfg.Overflow, log: log,
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "vigil", Name: "dlq_discarded_total",
			Help: "Dead letters discarded because the dead-letter stream was full (buffer.dlq.overflow), by stage and policy."},
			[]string{"stage", "policy"})}
	reg.MustRegister(w.discarded)
	return w
}

// GroupLetters splits letters into the messages they are stored as: one per stage and
// source, each at most about event.MaxBatchBytes of originals. Each message's ID
// derives from its letters' IDs, so a re-publish after a crash is a duplicate.
func GroupLetters(letters []component.Letter) []wire.Out {
	type key struct{ stage, source string }
	var order []key
	groups := map[key][][]component.Letter{}
	size := map[key]int{}
	for _, l := range letters {
		k := key{l.Stage, l.Source}
		gs, ok := groups[k]
		if !ok {
			order = append(order, k)
		}
		if len(gs) == 0 || size[k]+len(l.Original) > event.MaxBatchBytes && len(gs[len(gs)-1]) > 0 {
			gs = append(gs, nil)
			size[k] = 0
		}
		gs[len(gs)-1] = append(gs[len(gs)-1], l)
		size[k] += len(l.Original)
		groups[k] = gs
	}
	var out []wire.Out
	for _, k := range order {
		for _, g := range groups[k] {
			id := g[0].ID
			if id != "" && len(g) > 1 {
				id += "+" + strconv.Itoa(len(g))
			}
			out = append(out, wire.Out{Msg: wire.LettersMsg(g), ID: id})
		}
	}
	return out
}

// Pending is a set of dead-letter messages being stored.
type Pending struct {
	w    *Writer
	outs []wire.Out
	futs []jetstream.PubAckFuture
	err  error // a publish that could not even start
}

// Start starts storing letters; Wait settles them.
func (w *Writer) Start(letters []component.Letter) *Pending {
	p := &Pending{w: w}
	if len(letters) == 0 {
		return p
	}
	p.outs = GroupLetters(letters)
	for _, o := range p.outs {
		f, err := w.st.PublishAsync(o.Msg, o.ID)
		if err != nil {
			p.futs = append(p.futs, nil)
			if !errors.Is(wire.Classify(err), component.ErrFull) && p.err == nil {
				p.err = wire.Classify(err)
			}
			continue
		}
		p.futs = append(p.futs, f)
	}
	return p
}

// Wait waits until every letter is stored or, with the stream full, handled by the
// overflow policy. It returns an error only when the stream failed otherwise (the
// caller retries the unit); letters discarded by the policy are counted, not errors.
func (p *Pending) Wait(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	var first error
	for i, f := range p.futs {
		err := component.ErrFull
		if f != nil {
			select {
			case <-f.Ok():
				continue
			case e := <-f.Err():
				err = wire.Classify(e)
			case <-ctx.Done():
				return fmt.Errorf("%w: no acknowledgement: %v", component.ErrUnavailable, ctx.Err())
			}
		}
		if !errors.Is(err, component.ErrFull) {
			if first == nil {
				first = err
			}
			continue
		}
		if err := p.w.overflow(ctx, p.outs[i]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Store stores letters and waits (see Wait).
func (w *Writer) Store(ctx context.Context, letters []component.Letter) error {
	return w.Start(letters).Wait(ctx)
}

// overflow applies the policy to one message the full stream refused.
func (w *Writer) overflow(ctx context.Context, o wire.Out) error {
	stage, n := wire.StageOf(o.Msg.Subject), wire.LetterCount(o.Msg.Header)
	if w.policy == config.DLQDropOlder {
		dropped, err := w.dropOldest(ctx, len(o.Msg.Data)+4096)
		if err != nil {
			w.warn("dead-letter stream full and its oldest letters could not be removed; discarding the new ones", "err", err)
		} else {
			if _, err := w.st.Publish(ctx, o.Msg, o.ID); err == nil {
				w.warn("dead-letter stream full: removed the oldest letters to make room", "removed_letters", dropped, "policy", w.policy)
				return nil
			} else if !errors.Is(err, component.ErrFull) {
				return err
			}
		}
	}
	w.discarded.WithLabelValues(stage, w.policy).Add(float64(n))
	w.warn("dead-letter stream full: discarding new dead letters", "stage", stage, "letters", n, "policy", w.policy)
	return nil
}

// dropOldest removes the oldest DLQ messages until at least need bytes (and a tenth
// of the stream, so this does not run for every message) are free, counting their
// letters as discarded.
func (w *Writer) dropOldest(ctx context.Context, need int) (int, error) {
	s, err := w.st.JetStream().Stream(ctx, stream.DLQStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	target := max(uint64(need), uint64(info.Config.MaxBytes/10))
	freed, upTo, dropped := uint64(0), uint64(0), 0
	byStage := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && freed < target; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		freed += uint64(len(m.Data) + len(m.Subject) + headerSize(m.Header))
		n := wire.LetterCount(m.Header)
		byStage[wire.StageOf(m.Subject)] += n
		dropped += n
		upTo = seq
	}
	if upTo == 0 {
		return 0, errors.New("nothing to remove")
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(upTo+1)); err != nil {
		return 0, err
	}
	for stage, n := range byStage {
		w.discarded.WithLabelValues(stage, w.policy).Add(float64(n))
	}
	return dropped, nil
}

func headerSize(h nats.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// warn logs at most once every ten seconds.
func (w *Writer) warn(msg string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.lastWarn) < 10*time.Second {
		return
	}
	w.lastWarn = time.Now()
	w.log.Warn(msg, args...)
}
