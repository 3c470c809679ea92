package stream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/wire"
)

// TestOpenEmbedded declares the streams with the configured limits on an
// embedded server, and refuses a message over the payload limit before sending it.
func TestOpenEmbedded(t *testing.T) {
	cfg := config.Defaults().Buffer
	cfg.Intake.MaxBytes = 32 << 20
	ctx := context.Background()
	st, err := Open(ctx, cfg, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Embedded() || !st.Ready() || st.Epoch() == 0 {
		t.Fatalf("embedded=%v ready=%v epoch=%d", st.Embedded(), st.Ready(), st.Epoch())
	}
	usages, err := st.Usages(ctx)
	if err != nil || len(usages) != 4 || usages[3].Name != AggStream {
		t.Fatalf("usages %v %v", usages, err)
	}
	if usages[0].Name != IntakeStream || usages[0].MaxBytes != 32<<20 {
		t.Errorf("intake: %+v", usages[0])
	}
	msg := nats.NewMsg(wire.IntakeSubject("s"))
	msg.Data = make([]byte, st.MaxPayload())
	if _, err := st.Publish(ctx, msg, ""); !errors.Is(err, component.ErrTooLarge) {
		t.Errorf("oversized publish: %v", err)
	}
	msg.Data = []byte("x")
	if _, err := st.Publish(ctx, msg, "id-1"); err != nil {
		t.Fatal(err)
	}
	ack, err := st.Publish(ctx, msg, "id-1")
	if err != nil || !ack.Duplicate {
		t.Errorf("re-publish with the same ID: ack %+v err %v, want a duplicate", ack, err)
	}
	st.Close()
	st.Close() // idempotent
}

// TestDeclareConsumerHandsOutOrphans: messages a crashed run had fetched and never
// acknowledged are handed out again at the next start at once, not after ack_wait.
func TestDeclareConsumerHandsOutOrphans(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config.Defaults().Buffer
	st, err := Open(ctx, cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cc := jetstream.ConsumerConfig{Durable: "orphans", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute}
	cons, err := st.DeclareConsumer(ctx, EventsStream, cc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.Publish(ctx, &nats.Msg{Subject: wire.EventsSubject("x"), Data: []byte{byte(i)}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++ // taken, never acknowledged: the run "crashes" here
	}
	if n != 3 {
		t.Fatalf("fetched %d", n)
	}
	st.Close()

	st, err = Open(ctx, cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	cons, err = st.DeclareConsumer(ctx, EventsStream, cc)
	if err != nil {
		t.Fatal(err)
	}
	batch, err = cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for m := range batch.Messages() {
		n++
		_ = m.Ack()
	}
	if n != 3 || time.Since(start) > 10*time.Second {
		t.Fatalf("got %d of 3 orphaned messages after %s; want all within seconds, not after ack_wait (1m)", n, time.Since(start))
	}
	if info, err := cons.Info(ctx); err != nil || info.Config.AckWait != time.Minute {
		t.Fatalf("ack_wait not restored: %v %v", info.Config.AckWait, err)
	}
}

// TestEpochs: each stream's identity survives a restart on the same directory and
// changes when that stream, and only it, is recreated.
func TestEpochs(t *testing.T) {
	cfg := config.Defaults().Buffer
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	open := func() *Stream {
		t.Helper()
		st, err := Open(ctx, cfg, dir, log)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	intake, events := st.Epoch(), st.EventsEpoch()
	if intake == 0 || events == 0 {
		t.Fatalf("epochs %d, %d: want both set", intake, events)
	}
	st.Close()

	st = open()
	if st.Epoch() != intake || st.EventsEpoch() != events {
		t.Errorf("after a restart: epochs %d, %d; want %d, %d", st.Epoch(), st.EventsEpoch(), intake, events)
	}
	if err := st.JetStream().DeleteStream(ctx, EventsStream); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = open()
	defer st.Close()
	if st.Epoch() != intake {
		t.Errorf("intake epoch %d after the events stream was recreated, want %d", st.Epoch(), intake)
	}
	if st.EventsEpoch() == events || st.EventsEpoch() == 0 {
		t.Errorf("events epoch %d after the stream was recreated, want a new one (was %d)", st.EventsEpoch(), events)
	}
}
