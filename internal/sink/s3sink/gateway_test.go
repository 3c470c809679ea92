package s3sink_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/s3sink"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// gateway is the shared versitygw test server.
type gateway = testutil.S3Gateway

const (
	testAccessKey = testutil.S3AccessKey
	testSecret    = testutil.S3Secret
	testBucket    = testutil.S3Bucket
)

func startGateway(t testing.TB) *gateway { return testutil.StartS3Gateway(t) }

// sinkConfig is a valid config of a sink writing to the gateway.
func sinkConfig(g *gateway) *s3sink.Config {
	c := s3sink.NewConfig()
	c.Bucket = testBucket
	c.Endpoint = g.Endpoint()
	c.AccessKeyID = testAccessKey
	c.SecretAccessKey = testSecret
	c.MaxAge = time.Hour // tests end objects by size or by Stop unless they say otherwise
	c.RequestTimeout = 5 * time.Second
	c.Retry = s3sink.Retry{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	return c
}

// newSink builds and starts a sink on cfg.
func newSink(t testing.TB, cfg *s3sink.Config, name string) *s3sink.Sink {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := s3sink.New(cfg, component.SinkDeps{Name: name, Log: slog.New(slog.DiscardHandler),
		Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// acks records each batch's outcome.
type acks struct {
	mu   sync.Mutex
	done map[uint64][]error
}

func newAcks() *acks { return &acks{done: map[uint64][]error{}} }

func (a *acks) fn(seq uint64) func(error) {
	return func(err error) {
		a.mu.Lock()
		a.done[seq] = append(a.done[seq], err)
		a.mu.Unlock()
	}
}

// acked counts the sequences whose last outcome is success.
func (a *acks) acked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, errs := range a.done {
		if len(errs) > 0 && errs[len(errs)-1] == nil {
			n++
		}
	}
	return n
}

// failed returns the sequences whose last outcome was an error.
func (a *acks) failed() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []uint64
	for q, errs := range a.done {
		if len(errs) > 0 && errs[len(errs)-1] != nil {
			out = append(out, q)
		}
	}
	return out
}

// testEpoch is the events stream epoch of the test batches unless a test says
// otherwise.
const testEpoch = 1773500966000000000

// batch builds a batch of testEpoch of n ECS documents with ids "<dataset>-<seq>-<i>".
func batch(dataset string, seq uint64, at time.Time, n int, a *acks) *component.Batch {
	return batchOf(testEpoch, dataset, seq, at, n, a)
}

// docID is the id of document i of batch seq of dataset in epoch.
func docID(epoch int64, dataset string, seq uint64, i int) string {
	if epoch == testEpoch {
		return fmt.Sprintf("%s-%d-%d", dataset, seq, i)
	}
	return fmt.Sprintf("%d/%s-%d-%d", epoch, dataset, seq, i)
}

// batchOf builds a batch of epoch of n ECS documents with ids from docID.
func batchOf(epoch int64, dataset string, seq uint64, at time.Time, n int, a *acks) *component.Batch {
	var docs []byte
	for i := range n {
		docs = fmt.Appendf(docs, `{"@timestamp":"%s","event":{"dataset":%q,"id":%q,"action":"login","outcome":"success"},`+
			`"message":"user %d logged in","source":{"ip":"10.0.%d.%d","port":%d},"user":{"name":"u%d"},`+
			`"http":{"request":{"method":"GET"},"response":{"status_code":200}},"cloud":{"account":{"id":"123456789012"},"region":"eu-west-1"}}`+"\n",
			at.Add(time.Duration(i)*time.Millisecond).UTC().Format(time.RFC3339Nano), dataset, docID(epoch, dataset, seq, i), i, seq%250, i%250, 1024+i, i)
	}
	b := component.NewBatch(dataset, seq, at, docs, n, a.fn(seq))
	b.Epoch = epoch
	return b
}

// countIDs counts documents per event.id.
func countIDs(docs []map[string]any) map[string]int {
	seen := map[string]int{}
	for _, d := range docs {
		id, _ := testutil.Field(d, "event.id").(string)
		seen[id]++
	}
	return seen
}

// checkExactlyOnce fails unless the documents are exactly want[dataset] batches
// of per documents each, each once.
func checkExactlyOnce(t testing.TB, docs []map[string]any, want map[string][]uint64, per int) {
	t.Helper()
	seen := countIDs(docs)
	total := 0
	for ds, seqs := range want {
		for _, q := range seqs {
			for i := range per {
				id := fmt.Sprintf("%s-%d-%d", ds, q, i)
				if seen[id] != 1 {
					t.Errorf("event %s stored %d times, want once", id, seen[id])
				}
			}
			total += per
		}
	}
	if len(docs) != total {
		t.Errorf("got %d documents, want %d", len(docs), total)
	}
}
