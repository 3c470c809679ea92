package kinesissource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/kinesissource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// stream is one Kinesis stream on an emulator (moto or kinesalite), with a plain
// client to put to.
type stream struct {
	endpoint string
	client   *kinesis.Client
	name     string
}

func newStream(t testing.TB, endpoint, name string, shards int32) *stream {
	t.Helper()
	c := kinesis.NewFromConfig(aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")},
		func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
	if _, err := c.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	s := &stream{endpoint: endpoint, client: c, name: name}
	s.waitActive(t)
	return s
}

func (s *stream) waitActive(t testing.TB) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "stream active", func() bool {
		out, err := s.client.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.name)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
	})
}

// put puts records with ids from..to-1, spread over partition keys.
func (s *stream) put(t testing.TB, from, to int) {
	t.Helper()
	for i := from; i < to; i += 100 {
		var entries []types.PutRecordsRequestEntry
		for j := i; j < min(i+100, to); j++ {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("key-%d", j%17)),
				Data: fmt.Appendf(nil, `{"tid":"r%d","message":"kinesis test"}`, j)})
		}
		out, err := s.client.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(s.name), Records: entries})
		if err != nil || aws.ToInt32(out.FailedRecordCount) > 0 {
			t.Fatalf("put: %v %v", err, out)
		}
	}
}

func (s *stream) config(mutate func(*kinesissource.Config)) *kinesissource.Config {
	c := kinesissource.NewConfig()
	c.Stream = s.name
	c.Endpoint = s.endpoint
	c.AccessKeyID, c.SecretAccessKey = "test", "test"
	c.PollInterval = 50 * time.Millisecond
	c.ShardSyncInterval = 200 * time.Millisecond
	c.LeaseTTL = 3 * time.Second
	if mutate != nil {
		mutate(c)
	}
	return c
}

// node is a pipeline with one kinesis source and an archive sink.
type node struct {
	p   *pipeline.Pipeline
	dir string
}

func startNode(t *testing.T, dir, natsURL string, src *kinesissource.Config) *node {
	t.Helper()
	return startPipeline(t, nodeConfig(dir, natsURL, src))
}

func startPipeline(t *testing.T, cfg *config.Config) *node {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.NewTextHandler(logOut, nil)), Version: "test", Registry: components.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := &node{p: p, dir: cfg.DataDir}
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = n.p.Stop(ctx)
}

// nodeConfig is a node with one kinesis source, central, and an archive sink; with
// natsURL, on that NATS server instead of an embedded one.
func nodeConfig(dir, natsURL string, src *kinesissource.Config) *config.Config {
	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	if natsURL != "" {
		cfg.Buffer.Type, cfg.Buffer.URLs = "nats", []string{natsURL}
	}
	a := archivesink.NewConfig()
	a.MaxAge = 200 * time.Millisecond
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "central", Type: "kinesis", Format: "json", FormatOptions: opts, Settings: src}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	return cfg
}

// archived counts each record id in the archives of dirs.
func archived(t *testing.T, dirs ...string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, dir := range dirs {
		for _, d := range testutil.ArchiveDocs(t, dir+"/archive") {
			seen[fmt.Sprint(d["tid"])]++
		}
	}
	return seen
}

// waitExactlyOnce waits until records 0..n-1 are archived, then checks each once.
func waitExactlyOnce(t *testing.T, n int, dirs ...string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, fmt.Sprintf("%d records in the archive", n), func() bool {
		return len(archived(t, dirs...)) >= n
	})
	seen := archived(t, dirs...)
	for i := range n {
		if c := seen[fmt.Sprintf("r%d", i)]; c != 1 {
			t.Errorf("r%d archived %d times, want once", i, c)
		}
	}
	if len(seen) != n {
		t.Errorf("archive has %d distinct records, want %d", len(seen), n)
	}
}

// TestEndToEnd reads every shard through a real pipeline into the archive, each
// record exactly once; a restart resumes from the checkpoints and reads only what
// came after. The restart says start_at: latest, under which a source that ignored
// its checkpoints would miss the records put while it was stopped (and a page read
// again would be hidden by the duplicate window, so the checkpoint is what is
// tested).
func TestEndToEnd(t *testing.T) {
	m := testutil.StartMoto(t)
	s := newStream(t, m.Endpoint(), "central-logs", 3)
	s.put(t, 0, 250)
	dir := t.TempDir()
	n := startNode(t, dir, "", s.config(nil))
	waitExactlyOnce(t, 250, dir)
	n.stop()

	s.put(t, 250, 400)
	startNode(t, dir, "", s.config(func(c *kinesissource.Config) { c.StartAt = kinesissource.StartLatest }))
	waitExactlyOnce(t, 400, dir)
}

// TestSplitDuringIngestion splits a shard while records flow: the children are read
// after their parent is finished, and every record arrives once. Kinesalite, since
// moto's SplitShard never closes the parent (it moves the parent's records into the
// children instead).
func TestSplitDuringIngestion(t *testing.T) {
	k := testutil.StartKinesalite(t)
	s := newStream(t, k.Endpoint(), "split", 1)
	s.put(t, 0, 100)
	dir := t.TempDir()
	startNode(t, dir, "", s.config(nil))
	testutil.Eventually(t, 30*time.Second, "first records archived", func() bool { return len(archived(t, dir)) > 0 })
	shards, err := s.client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(s.name)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String(s.name),
		ShardToSplit: shards.Shards[0].ShardId, NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	s.waitActive(t)
	s.put(t, 100, 300)
	waitExactlyOnce(t, 300, dir)
}
