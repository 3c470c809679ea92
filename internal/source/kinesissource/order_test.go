package kinesissource_test

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/kinesissource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// recorder is a component.Intake that keeps what was stored, in order.
type recorder struct {
	mu      sync.Mutex
	records []string
	ids     []string
}

func (r *recorder) Store(_ context.Context, recs component.Records) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range recs.Records {
		r.records = append(r.records, string(b))
	}
	r.ids = append(r.ids, recs.ID)
	return nil
}

func (r *recorder) DeadLetter(context.Context, ...component.Letter) error { return nil }

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.records...)
}

// jetStreamKV runs an in-process JetStream server and returns SourceDeps.KV on it.
func jetStreamKV(t *testing.T) func(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); s.Shutdown(); s.WaitForShutdown() })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket})
	}
}

// TestOrderAcrossSplit: the records of one partition key are stored in the order
// they were put, across a split (the children wait for the parent's end), each
// once; every page's ID names the stream, the shard and the page's first sequence.
func TestOrderAcrossSplit(t *testing.T) {
	k := testutil.StartKinesalite(t)
	s := newStream(t, k.Endpoint(), "ordered", 1)
	putKey := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := s.client.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(s.name),
				PartitionKey: aws.String("one-key"), Data: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	putKey(0, 60)
	in := &recorder{}
	src := kinesissource.New(s.config(nil), component.SourceDeps{Name: "central", Source: &config.Source{Name: "central", Type: "kinesis"},
		Intake: in, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: component.NewMetrics(prometheus.NewRegistry()),
		KV: jetStreamKV(t)})
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = src.Stop(ctx)
	})
	testutil.Eventually(t, 30*time.Second, "first records stored", func() bool { return len(in.snapshot()) > 0 })
	shards, err := s.client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(s.name)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String(s.name),
		ShardToSplit: shards.Shards[0].ShardId, NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	s.waitActive(t)
	putKey(60, 120)
	testutil.Eventually(t, 30*time.Second, "120 records stored", func() bool { return len(in.snapshot()) >= 120 })
	got := in.snapshot()
	if len(got) != 120 {
		t.Fatalf("stored %d records, want 120", len(got))
	}
	for i, r := range got {
		if r != strconv.Itoa(i) {
			t.Fatalf("record %d is %q: order broken (%v)", i, r, got)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	idPattern := regexp.MustCompile(`^ordered/(shardId-\d{12})/\d+$`)
	shardsRead := map[string]bool{}
	for _, id := range in.ids {
		m := idPattern.FindStringSubmatch(id)
		if m == nil {
			t.Fatalf("unit ID %q: want ordered/<shard>/<first sequence>", id)
		}
		shardsRead[m[1]] = true
	}
	if !shardsRead["shardId-000000000000"] || len(shardsRead) < 2 {
		t.Fatalf("read shards %v: want the parent and a child", shardsRead)
	}
}

// TestOrderAcrossMerge: two shards merged while records flow; the child has two
// parents and is read only after both ended, so each key's records keep their
// order.
func TestOrderAcrossMerge(t *testing.T) {
	k := testutil.StartKinesalite(t)
	s := newStream(t, k.Endpoint(), "merged", 2)
	// Explicit hash keys put "low" in the first shard and "high" in the second.
	hashes := map[string]string{"low": "1", "high": "340282366920938463463374607431768211454"}
	put := func(from, to int) {
		for i := from; i < to; i++ {
			for key, h := range hashes {
				if _, err := s.client.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(s.name),
					PartitionKey: aws.String(key), ExplicitHashKey: aws.String(h), Data: []byte(key + "-" + strconv.Itoa(i))}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	put(0, 30)
	in := &recorder{}
	src := kinesissource.New(s.config(nil), component.SourceDeps{Name: "central", Source: &config.Source{Name: "central", Type: "kinesis"},
		Intake: in, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: component.NewMetrics(prometheus.NewRegistry()),
		KV: jetStreamKV(t)})
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = src.Stop(ctx)
	})
	testutil.Eventually(t, 30*time.Second, "first records stored", func() bool { return len(in.snapshot()) > 0 })
	if _, err := s.client.MergeShards(context.Background(), &kinesis.MergeShardsInput{StreamName: aws.String(s.name),
		ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000001")}); err != nil {
		t.Fatal(err)
	}
	s.waitActive(t)
	put(30, 60)
	testutil.Eventually(t, 30*time.Second, "120 records stored", func() bool { return len(in.snapshot()) >= 120 })
	got := in.snapshot()
	if len(got) != 120 {
		t.Fatalf("stored %d records, want 120", len(got))
	}
	next := map[string]int{}
	for _, r := range got {
		key, _, _ := strings.Cut(r, "-")
		if want := key + "-" + strconv.Itoa(next[key]); r != want {
			t.Fatalf("got %q, want %q: order broken (%v)", r, want, got)
		}
		next[key]++
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	child := false
	for _, id := range in.ids {
		child = child || strings.HasPrefix(id, "merged/shardId-000000000002/")
	}
	if !child {
		t.Fatalf("the merged child was not read: %v", in.ids)
	}
}
