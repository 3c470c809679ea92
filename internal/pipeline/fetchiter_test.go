package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// fetchIter hands out every message once, in order, never pulling more than its
// count at a time, and after Drain ends with jetstream.ErrMsgIteratorClosed.
func TestFetchIter(t *testing.T) {
	st, err := stream.Open(context.Background(), config.Defaults().Buffer, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ctx := context.Background()
	const n, size = 20, 100 << 10
	for i := range n {
		if _, err := st.JetStream().Publish(ctx, wire.EventsSubject("web"), bytes.Repeat([]byte{byte('a' + i)}, size)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := st.DeclareConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: "fetchiter-test",
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	it := &fetchIter{cons: cons, n: 3, wait: 200 * time.Millisecond}
	for i := range n {
		m, err := it.Next(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if len(m.Data()) != size || m.Data()[0] != byte('a'+i) {
			t.Fatalf("message %d: %d bytes of %q", i, len(m.Data()), m.Data()[:1])
		}
		// No more than the count is pulled at once.
		if ci, err := cons.Info(ctx); err != nil {
			t.Fatal(err)
		} else if out := ci.NumAckPending; out > 3 {
			t.Fatalf("after message %d: %d delivered and not acknowledged, want at most 3", i, out)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	it.Drain()
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if m, err := it.Next(waitCtx); !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
		t.Fatalf("after Drain: %v, %v; want ErrMsgIteratorClosed", m, err)
	}
}
