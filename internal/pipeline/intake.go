package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/stream"
)

// intake is a source's component.Intake: it batches records, compresses them and
// publishes them to the source's intake subject, returning once every batch is
// acknowledged by JetStream.
type intake struct {
	st      *stream.Stream
	source  string
	format  string
	dataset string
	// dlqSource names the source on dead letters.
	counters *component.Counters
}

var _ component.Intake = (*intake)(nil)

// Store implements component.Intake.
func (in *intake) Store(ctx context.Context, recs component.Records) error {
	if len(recs.Records) == 0 {
		return nil
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
	var futures []jetstream.PubAckFuture
	var batch event.RawBatch
	bytes := 0
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		msg := nats.NewMsg(stream.IntakeSubject(in.source))
		msg.Header.Set(event.HeaderEncoding, event.EncodingS2)
		msg.Header.Set(event.HeaderFormat, format)
		if recs.Format != "" && recs.Format != in.format {
			msg.Header.Set(event.HeaderFormatOverride, "1")
		}
		if dataset != "" {
			msg.Header.Set(event.HeaderDataset, dataset)
		}
		msg.Header.Set(event.HeaderReceived, strconv.FormatInt(received.UnixNano(), 10))
		msg.Header.Set(event.HeaderCount, strconv.Itoa(batch.Len()))
		msg.Data = batch.Encode()
		f, err := in.st.PublishAsync(msg, "")
		if err != nil {
			return err
		}
		futures = append(futures, f)
		batch.Reset()
		return nil
	}
	for _, r := range recs.Records {
		bytes += len(r)
		if batch.Len() > 0 && batch.Size()+len(r) > event.MaxBatchBytes {
			if err := flush(); err != nil {
				return in.fail(err)
			}
		}
		batch.Add(r)
	}
	if err := flush(); err != nil {
		return in.fail(err)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return in.fail(stream.Classify(err))
		case <-ctx.Done():
			return in.fail(fmt.Errorf("%w: %v", component.ErrUnavailable, ctx.Err()))
		}
	}
	in.counters.Sent(len(recs.Records), bytes)
	return nil
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
	if err := publishLetters(ctx, in.st, letters); err != nil {
		return in.fail(err)
	}
	for _, l := range letters {
		in.counters.DeadLettered(l.Stage, 1)
	}
	return nil
}

// publishLetters stores dead letters and waits for their acknowledgements.
func publishLetters(ctx context.Context, st *stream.Stream, letters []component.Letter) error {
	ctx, cancel := context.WithTimeout(ctx, st.PublishTimeout())
	defer cancel()
	var futures []jetstream.PubAckFuture
	for _, l := range letters {
		msg := LetterMsg(l)
		f, err := st.PublishAsync(msg, l.ID)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return stream.Classify(err)
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", component.ErrUnavailable, ctx.Err())
		}
	}
	return nil
}

// LetterMsg is the stream message of a dead letter: headers describe it, the body is
// the original bytes, uncompressed so `nats` tools show it as it came.
func LetterMsg(l component.Letter) *nats.Msg {
	msg := nats.NewMsg(stream.DLQSubject(l.Stage))
	msg.Header.Set(event.HeaderStage, l.Stage)
	msg.Header.Set(event.HeaderReason, truncate(l.Reason, 2048))
	msg.Header.Set(event.HeaderSource, l.Source)
	if l.Dataset != "" {
		msg.Header.Set(event.HeaderDataset, l.Dataset)
	}
	if l.Format != "" {
		msg.Header.Set(event.HeaderFormat, l.Format)
	}
	t := l.Time
	if t.IsZero() {
		t = time.Now()
	}
	msg.Header.Set(event.HeaderReceived, strconv.FormatInt(t.UnixNano(), 10))
	if l.Origin != "" {
		msg.Header.Set(event.HeaderOrigin, l.Origin)
	}
	msg.Data = l.Original
	return msg
}

// truncate keeps header values bounded and free of line breaks.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}
