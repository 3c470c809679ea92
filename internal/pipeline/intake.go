package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/deadletter"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// intake is a source's component.Intake: it batches records, compresses them and
// publishes them to the source's intake subject, returning once every batch is
// acknowledged by JetStream.
type intake struct {
	st      *stream.Stream
	source  string
	format  string
	dataset string
	letters *deadletter.Writer
	// budget bounds and recycles the memory of Store calls across the node's sources.
	budget *intakeBudget
	// counters are the source's.
	counters *component.Counters
	// storeIDs, on a NATS cluster, names every Store without a unit ID, so that a
	// publish the client resends (after a "no responders" answer during an election
	// or a partition) is dropped by the stream's duplicate detection instead of
	// stored twice under new event IDs. Nil on the embedded server.
	storeIDs *storeIDs
}

// storeIDs makes unit IDs unique across nodes and restarts: a random prefix and a
// counter.
type storeIDs struct {
	prefix string
	n      atomic.Uint64
}

func newStoreIDs() *storeIDs {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return &storeIDs{prefix: "s" + hex.EncodeToString(r[:]) + "-"}
}

func (g *storeIDs) next() string { return g.prefix + strconv.FormatUint(g.n.Add(1), 10) }

// newFunc returns next, or nil for a nil g (component.SourceDeps.UnitID).
func (g *storeIDs) newFunc() func() string {
	if g == nil {
		return nil
	}
	return g.next
}

var _ component.Intake = (*intake)(nil)

// Store implements component.Intake.
func (in *intake) Store(ctx context.Context, recs component.Records) error {
	if len(recs.Records) == 0 {
		return nil
	}
	if recs.ID == "" && in.storeIDs != nil {
		recs.ID = in.storeIDs.next()
	}
	ctx, cancel := context.WithTimeout(ctx, in.st.PublishTimeout())
	defer cancel()
	received := recs.Received
	if received.IsZero() {
		received = time.Now()
	}
	dataset := recs.Dataset
	if dataset == "" {
		dataset = in.dataset
	}
	format := recs.Format
	if format == "" {
		format = in.format
	}
	total := 0
	for _, r := range recs.Records {
		total += len(r)
	}
	release, err := in.budget.acquire(ctx, total)
	if err != nil {
		return in.fail(err)
	}
	defer release()
	var pending wire.Pending
	var batch event.RawBatch
	batch.Use(in.budget.get())
	// The compressed bodies stay referenced until JetStream has acknowledged them.
	// After a failure a publish may still be retried from its body (nats.go resends
	// on "no responders"): only acknowledged bodies are recycled.
	var bodies [][]byte
	acked := false
	defer func() {
		in.budget.put(batch.Buffer())
		for _, b := range bodies {
			if acked {
				in.budget.put(b)
			}
		}
	}()
	bytes := 0
	batches := 0
	first := 0 // index in recs.Records of the batch's first record
	// Per-record fields travel in a header, which counts toward the message size.
	perRecord := len(recs.RecordFields) == len(recs.Records)
	headerBytes := 0
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		raw := wire.Raw{Source: in.source, Format: format, FormatOverride: recs.Format != "" && recs.Format != in.format,
			Dataset: dataset, Received: received, Count: batch.Len(), Body: batch.EncodeTo(in.budget.get()), Fields: recs.Fields}
		bodies = append(bodies, raw.Body)
		if len(recs.Lines) == len(recs.Records) && recs.LineField != "" {
			raw.Lines, raw.LineField = recs.Lines[first:first+batch.Len()], recs.LineField
		}
		if perRecord {
			raw.RecordFields = recs.RecordFields[first : first+batch.Len()]
		}
		headerBytes = 0
		first += batch.Len()
		msg := wire.RawMsg(raw)
		batch.Reset()
		id := ""
		if recs.ID != "" {
			// Batches are cut at the same places for the same records, so the n-th
			// batch of a unit has the same content on every try.
			id = "u:" + in.source + ":" + recs.ID
			if batches > 0 {
				id = fmt.Sprintf("%s#%d", id, batches)
			}
		}
		batches++
		return pending.Publish(in.st, msg, id)
	}
	for i, r := range recs.Records {
		bytes += len(r)
		fb := 0
		if perRecord {
			fb = fieldsBytes(recs.RecordFields[i])
		}
		if batch.Len() > 0 && batch.Size()+len(r)+headerBytes+fb > event.MaxBatchBytes {
			if err := flush(); err != nil {
				_ = pending.Wait(ctx)
				return in.fail(err)
			}
		}
		batch.Add(r)
		headerBytes += fb
	}
	if err := flush(); err != nil {
		_ = pending.Wait(ctx)
		return in.fail(err)
	}
	if err := pending.Wait(ctx); err != nil {
		return in.fail(err)
	}
	acked = true
	in.counters.Sent(len(recs.Records), bytes)
	return nil
}

// fieldsBytes estimates the JSON size of f in a header: quotes, colon and comma
// around plain text (characters JSON escapes take more, and are rare in metadata).
func fieldsBytes(f map[string]string) int {
	n := 5 // null or {} and the comma
	for k, v := range f {
		n += len(k) + len(v) + 6
	}
	return n
}

func (in *intake) fail(err error) error {
	switch {
	case errors.Is(err, component.ErrFull):
		in.counters.Error("stream_full")
	case errors.Is(err, component.ErrTooLarge):
		in.counters.Error("too_large")
	default:
		in.counters.Error("stream_unavailable")
	}
	return err
}

// DeadLetter implements component.Intake.
func (in *intake) DeadLetter(ctx context.Context, letters ...component.Letter) error {
	for i := range letters {
		if letters[i].Source == "" {
			letters[i].Source = in.source
		}
		if letters[i].Format == "" {
			letters[i].Format = in.format
		}
	}
	if err := storeLetters(ctx, in.st, in.letters, letters); err != nil {
		return in.fail(err)
	}
	for _, l := range letters {
		in.counters.DeadLettered(l.Stage, 1)
	}
	return nil
}

// storeLetters stores dead letters and waits until each is stored or handled by the
// DLQ's overflow policy.
func storeLetters(ctx context.Context, st *stream.Stream, w *deadletter.Writer, letters []component.Letter) error {
	ctx, cancel := context.WithTimeout(ctx, st.PublishTimeout())
	defer cancel()
	return w.Store(ctx, letters)
}
