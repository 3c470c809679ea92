package kinesissource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/kinesissource"
	"github.com/vigil-sec/vigil/internal/testutil"
	"github.com/vigil-sec/vigil/internal/testutil/kinesisefo"
)

// Neither kinesalite nor moto implements SubscribeToShard (moto registers consumers
// but has no event stream), so these tests run against kinesisefo, a test server
// that speaks AWS's protocol: HTTP/2 over TLS, application/vnd.amazon.eventstream.

// startEFO starts the test server and makes the AWS SDK trust its certificate.
func startEFO(t *testing.T) *kinesisefo.Server {
	t.Helper()
	srv := kinesisefo.Start(t)
	t.Setenv("AWS_CA_BUNDLE", srv.CAFile())
	return srv
}

func efoConfig(srv *kinesisefo.Server, stream string) *kinesissource.Config {
	c := kinesissource.NewConfig()
	c.Stream = stream
	c.Endpoint = srv.Endpoint()
	c.AccessKeyID, c.SecretAccessKey = "test", "test"
	c.ShardSyncInterval = 200 * time.Millisecond
	c.LeaseTTL = 3 * time.Second
	c.EnhancedFanOut.Enabled = true
	return c
}

// startSource starts a kinesis source named central on a recording intake.
func startSource(t *testing.T, cfg *kinesissource.Config, in component.Intake,
	kv func(context.Context, string) (jetstream.KeyValue, error)) (*kinesissource.Source, *prometheus.Registry) {
	t.Helper()
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	reg := prometheus.NewRegistry()
	src := kinesissource.New(cfg, component.SourceDeps{Name: "central", Source: &config.Source{Name: "central", Type: "kinesis"},
		Intake: in, Log: slog.New(slog.NewTextHandler(logOut, nil)), Metrics: component.NewMetrics(reg), KV: kv})
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopSource(src) })
	return src, reg
}

func stopSource(src *kinesissource.Source) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = src.Stop(ctx)
}

// putKeys puts records "<key>-<n>" for n in from..to-1 under each of keys.
func putKeys(srv *kinesisefo.Server, stream string, keys []string, from, to int) {
	for i := from; i < to; i++ {
		for _, k := range keys {
			srv.Put(stream, k, []byte(k+"-"+strconv.Itoa(i)))
		}
	}
}

// checkOnceInOrder checks that got holds "<key>-0".."<key>-<n-1>" of each key
// exactly once, each key's records in order.
func checkOnceInOrder(t *testing.T, got []string, keys []string, n int) {
	t.Helper()
	if len(got) != n*len(keys) {
		t.Errorf("stored %d records, want %d", len(got), n*len(keys))
	}
	next := map[string]int{}
	for _, r := range got {
		key, _, _ := strings.Cut(r, "-")
		if want := key + "-" + strconv.Itoa(next[key]); r != want {
			t.Fatalf("got %q, want %q: a record lost, repeated or out of order", r, want)
		}
		next[key]++
	}
	for _, k := range keys {
		if next[k] != n {
			t.Errorf("key %s: %d records, want %d", k, next[k], n)
		}
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name, shard string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "shard" && l.GetValue() == shard {
					return value(m), true
				}
			}
		}
	}
	return 0, false
}

var efoKeys = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}

// TestFanOutResubscribeAndRestart: the source registers its consumer, waits for it
// to be ACTIVE, and subscribes to every shard over HTTP/2; the server ends each
// subscription after 300 ms, and records put across many re-subscriptions are each
// stored once, in order (the intake records every store: no duplicate window hides
// a repeat). Stopped, then started again with start_at: latest, the source resumes
// from its checkpoints: the records put while it was stopped arrive, once.
func TestFanOutResubscribeAndRestart(t *testing.T) {
	srv := startEFO(t)
	srv.Lifetime = 300 * time.Millisecond
	srv.ActivateAfter = 600 * time.Millisecond
	srv.CreateStream("fanout", 2)
	putKeys(srv, "fanout", efoKeys, 0, 50)
	in := &recorder{}
	kv := jetStreamKV(t)
	src, reg := startSource(t, efoConfig(srv, "fanout"), in, kv)
	testutil.Eventually(t, 30*time.Second, "400 records stored", func() bool { return len(in.snapshot()) >= 400 })
	if got := srv.Consumers("fanout"); !slices.Equal(got, []string{"vigil-central"}) {
		t.Fatalf("consumers %v, want the one registered by the source, vigil-central", got)
	}
	// Put batches while subscriptions end and start again.
	for batch := range 5 {
		subs := srv.Subscriptions()
		testutil.Eventually(t, 30*time.Second, "a re-subscription", func() bool { return srv.Subscriptions() >= subs+2 })
		putKeys(srv, "fanout", efoKeys, 50+batch*10, 60+batch*10)
	}
	testutil.Eventually(t, 30*time.Second, "800 records stored", func() bool { return len(in.snapshot()) >= 800 })
	for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
		if _, ok := gauge(t, reg, "vigil_millis_behind_latest", shard); !ok {
			t.Errorf("no millis_behind_latest for %s", shard)
		}
	}
	stopSource(src)

	putKeys(srv, "fanout", efoKeys, 100, 150)
	cfg := efoConfig(srv, "fanout")
	cfg.StartAt = kinesissource.StartLatest
	startSource(t, cfg, in, kv)
	testutil.Eventually(t, 30*time.Second, "1200 records stored", func() bool { return len(in.snapshot()) >= 1200 })
	time.Sleep(500 * time.Millisecond) // a repeat would arrive now
	checkOnceInOrder(t, in.snapshot(), efoKeys, 150)
}

// TestFanOutSplit splits a shard while records flow: the parent's last event names
// its children and ends the parent (SHARD_END); the children are read only after
// it, so each key's records stay in order, each once.
//
// With the children left out of ListShards (a lagging shard list), they are read
// all the same: the source learned them from the parent's last event.
func TestFanOutSplit(t *testing.T) {
	for _, unlisted := range []bool{false, true} {
		t.Run(fmt.Sprintf("unlisted=%v", unlisted), func(t *testing.T) { testFanOutSplit(t, unlisted) })
	}
}

func testFanOutSplit(t *testing.T, unlisted bool) {
	srv := startEFO(t)
	srv.Unlisted = unlisted
	srv.CreateStream("split", 1)
	putKeys(srv, "split", efoKeys, 0, 30)
	in := &recorder{}
	startSource(t, efoConfig(srv, "split"), in, jetStreamKV(t))
	testutil.Eventually(t, 30*time.Second, "first records stored", func() bool { return len(in.snapshot()) > 0 })
	srv.Split("split", "shardId-000000000000")
	putKeys(srv, "split", efoKeys, 30, 60)
	testutil.Eventually(t, 30*time.Second, "480 records stored", func() bool { return len(in.snapshot()) >= 480 })
	time.Sleep(500 * time.Millisecond)
	checkOnceInOrder(t, in.snapshot(), efoKeys, 60)
	in.mu.Lock()
	defer in.mu.Unlock()
	children := map[string]bool{}
	for _, id := range in.ids {
		if !strings.HasPrefix(id, "split/shardId-000000000000/") {
			children[strings.Split(id, "/")[1]] = true
		}
	}
	if len(children) != 2 {
		t.Fatalf("pages of the children %v, want both children read (%v)", children, in.ids)
	}
}

// TestFanOutEndToEnd: a 3-shard stream through a real pipeline (embedded
// JetStream, archive sink), every record archived once; a named consumer.
func TestFanOutEndToEnd(t *testing.T) {
	srv := startEFO(t)
	srv.CreateStream("central-logs", 3)
	for i := range 300 {
		srv.Put("central-logs", fmt.Sprintf("key-%d", i%17), fmt.Appendf(nil, `{"tid":"r%d","message":"kinesis test"}`, i))
	}
	cfg := efoConfig(srv, "central-logs")
	cfg.EnhancedFanOut.ConsumerName = "siem"
	dir := t.TempDir()
	startNode(t, dir, "", cfg)
	waitExactlyOnce(t, 300, dir)
	if got := srv.Consumers("central-logs"); !slices.Equal(got, []string{"siem"}) {
		t.Fatalf("consumers %v, want siem", got)
	}
}

// TestFanOutThrottled: SubscribeToShard refused with LimitExceededException is
// counted as throughput_exceeded and retried after a back-off; nothing is lost.
func TestFanOutThrottled(t *testing.T) {
	srv := startEFO(t)
	srv.CreateStream("throttled", 1)
	putKeys(srv, "throttled", efoKeys, 0, 20)
	srv.Throttle(3)
	in := &recorder{}
	_, reg := startSource(t, efoConfig(srv, "throttled"), in, jetStreamKV(t))
	testutil.Eventually(t, 30*time.Second, "160 records stored", func() bool { return len(in.snapshot()) >= 160 })
	checkOnceInOrder(t, in.snapshot(), efoKeys, 20)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0.0
	for _, f := range families {
		if f.GetName() != "vigil_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "throughput_exceeded" {
					throttled += m.GetCounter().GetValue()
				}
			}
		}
	}
	if throttled != 3 {
		t.Errorf("errors_total{reason=throughput_exceeded} = %v, want 3", throttled)
	}
}

// TestFanOutConcurrentShards reads 8 shards at once, events of 20 records of 4 KiB:
// every record is stored once and intact. Run it with -race too: each subscription
// has a protocol (and event-stream codec) of its own, since the client's shared one
// is written unguarded by every stream.
func TestFanOutConcurrentShards(t *testing.T) {
	srv := startEFO(t)
	srv.MaxPerEvent = 20
	srv.CreateStream("wide", 8)
	want := map[string]bool{}
	for i := range 1600 {
		rec := fmt.Sprintf("%05d-%s", i, strings.Repeat(strconv.Itoa(i%10), 4096))
		want[rec] = true
		srv.Put("wide", "key-"+strconv.Itoa(i), []byte(rec))
	}
	in := &recorder{}
	startSource(t, efoConfig(srv, "wide"), in, jetStreamKV(t))
	testutil.Eventually(t, 60*time.Second, "1600 records stored", func() bool { return len(in.snapshot()) >= 1600 })
	got := in.snapshot()
	if len(got) != 1600 {
		t.Errorf("stored %d records, want 1600", len(got))
	}
	for _, r := range got {
		if !want[r] {
			t.Fatalf("stored a record that was never put (%d bytes, starting %.20q)", len(r), r)
		}
		delete(want, r)
	}
}
