package threshold

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
	"github.com/vigil-sec/vigil/internal/wire"
)

// TestAggregatorSnapshot shows that a new holder starts from the saved state, not
// from a replay of the whole stream: after a clean stop, the samples it saved are
// purged from the stream, and the alert still fires when the rest arrive, once.
func TestAggregatorSnapshot(t *testing.T) {
	ctx := context.Background()
	bcfg := config.Defaults().Buffer
	bcfg.Type = "embedded"
	st, err := stream.Open(ctx, bcfg, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := cfg(func(c *Config) {
		c.Condition = "count >= 10"
		c.LeaseTTL = time.Second
		c.SnapshotInterval = 100 * time.Millisecond
	})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	procs := []*config.Processor{{Type: "threshold", Name: "brute", Settings: c}}
	newAgg := func() *Aggregator {
		aggs, err := NewAggregators(procs, st, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := aggs[0].Start(ctx); err != nil {
			t.Fatal(err)
		}
		return aggs[0]
	}
	var last uint64
	send := func(from, to int) {
		for i := from; i < to; i++ {
			s := &sample{t: sec(float64(i)), id: "e" + strconv.Itoa(i), group: []string{"10.0.0.1"}}
			b := appendSample(nil, s)
			ack, err := st.Publish(ctx, wire.AggMsg("brute", 1, append([]byte{byte(len(b))}, b...)), "")
			if err != nil {
				t.Fatal(err)
			}
			last = ack.Sequence
		}
	}

	a := newAgg()
	send(0, 6)
	testutil.Eventually(t, 10*time.Second, "6 samples taken in", func() bool { return a.Stats().Seq == last })
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	agg, err := st.JetStream().Stream(ctx, stream.AggStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	a = newAgg()
	defer func() { _ = a.Stop(ctx) }()
	send(6, 10)
	testutil.Eventually(t, 10*time.Second, "an alert", func() bool { return a.Alerts() == 1 })
	events, err := st.JetStream().Stream(ctx, stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := events.GetLastMsgForSubject(ctx, wire.EventsSubject(AlertDataset))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := wire.ReadEvents(m.Subject, m.Header, m.Data)
	if err != nil || ev.Count != 1 {
		t.Fatalf("alert batch: %v %+v", err, ev)
	}
	info, _ := events.Info(ctx, jetstream.WithSubjectFilter(wire.EventsSubject(AlertDataset)))
	if info.State.Msgs != 1 {
		t.Fatalf("%d alert messages, want 1", info.State.Msgs)
	}
	if s := a.Stats(); s.Groups != 1 {
		t.Errorf("stats %+v", s)
	}
}
