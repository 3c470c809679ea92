package s3sink_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/s3sink"
	"github.com/vigil-sec/vigil/internal/testutil"
)

const (
	testAccessKey = "vigiltest"
	testSecret    = "vigiltestsecret"
	testBucket    = "security-archive"
)

// gateway is a versitygw S3 server, pinned in go.mod as a tool, serving its posix
// backend over a directory that survives its restarts.
type gateway struct {
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

var gwBin struct {
	once sync.Once
	path string
	err  error
}

// versitygwBinary resolves `go tool versitygw` to its built binary once, so that
// the test signals the server itself rather than the go command.
func versitygwBinary(t testing.TB) string {
	t.Helper()
	gwBin.once.Do(func() {
		out, err := exec.Command("go", "tool", "-n", "versitygw").Output()
		gwBin.path, gwBin.err = strings.TrimSpace(string(out)), err
	})
	if gwBin.err != nil {
		t.Skipf("versitygw tool unavailable: %v", gwBin.err)
	}
	return gwBin.path
}

func startGateway(t testing.TB) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := &gateway{bin: versitygwBinary(t), dir: t.TempDir(), addr: addr}
	if err := os.MkdirAll(filepath.Join(g.dir, testBucket), 0o755); err != nil {
		t.Fatal(err)
	}
	g.start(t)
	t.Cleanup(g.stop)
	return g
}

func (g *gateway) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(g.bin, "--access", testAccessKey, "--secret", testSecret, "--port", g.addr, "--quiet",
		"posix", g.dir)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.cmd = cmd
	g.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(g.done) }()
	testutil.Eventually(t, 30*time.Second, "versitygw answering", func() bool {
		resp, err := http.Get(g.endpoint() + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

func (g *gateway) stop() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	g.cmd = nil
}

func (g *gateway) endpoint() string { return "http://" + g.addr }

// client is a plain SDK client of the gateway, for reading objects back.
func (g *gateway) client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(g.endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecret, ""),
	})
}

// sinkConfig is a valid config of a sink writing to the gateway.
func (g *gateway) sinkConfig() *s3sink.Config {
	c := s3sink.NewConfig()
	c.Bucket = testBucket
	c.Endpoint = g.endpoint()
	c.AccessKeyID = testAccessKey
	c.SecretAccessKey = testSecret
	c.MaxAge = time.Hour // tests end objects by size or by Stop unless they say otherwise
	c.RequestTimeout = 5 * time.Second
	c.Retry = s3sink.Retry{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	return c
}

// keys lists every key under prefix.
func (g *gateway) keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(g.client(), &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// dataKeys lists the data objects (not the manifests).
func (g *gateway) dataKeys(t testing.TB) []string {
	var out []string
	for _, k := range g.keys(t, "") {
		if !strings.HasPrefix(k, "_vigil/") {
			out = append(out, k)
		}
	}
	return out
}

func (g *gateway) get(t testing.TB, key string) []byte {
	t.Helper()
	out, err := g.client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ndjsonDocs reads every document of every NDJSON data object.
func (g *gateway) ndjsonDocs(t testing.TB) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for _, k := range g.dataKeys(t) {
		data := g.get(t, k)
		var r io.Reader
		switch {
		case strings.HasSuffix(k, ".ndjson.gz"):
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			r = zr
		case strings.HasSuffix(k, ".ndjson.zst"):
			zr, err := zstd.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			defer zr.Close()
			r = zr
		default:
			t.Fatalf("unexpected object %s", k)
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var d map[string]any
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatalf("%s: %q: %v", k, sc.Text(), err)
			}
			docs = append(docs, d)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	return docs
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

// batch builds a batch of n ECS documents with ids "<dataset>-<seq>-<i>".
func batch(dataset string, seq uint64, at time.Time, n int, a *acks) *component.Batch {
	var docs []byte
	for i := range n {
		docs = fmt.Appendf(docs, `{"@timestamp":"%s","event":{"dataset":%q,"id":"%s-%d-%d","action":"login","outcome":"success"},`+
			`"message":"user %d logged in","source":{"ip":"10.0.%d.%d","port":%d},"user":{"name":"u%d"},`+
			`"http":{"request":{"method":"GET"},"response":{"status_code":200}},"cloud":{"account":{"id":"123456789012"},"region":"eu-west-1"}}`+"\n",
			at.Add(time.Duration(i)*time.Millisecond).UTC().Format(time.RFC3339Nano), dataset, dataset, seq, i, i, seq%250, i%250, 1024+i, i)
	}
	return component.NewBatch(dataset, seq, at, docs, n, a.fn(seq))
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
