package s3source_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/source/s3source"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// benchObjectBytes is the uncompressed size of each benchmark object: an ALB node's
// five-minute file on a busy load balancer.
const benchObjectBytes = 8 << 20

// albBenchObject is a gzip ALB access log file of about size bytes uncompressed, in
// the current 33-field layout, with clients, ports, timings, sizes, paths, user
// agents and trace IDs varied so that it compresses about as real files do.
func albBenchObject(tb testing.TB, size int) (raw, gz []byte) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/index.html", "/api/items", "/api/cart", "/login", "/static/app.js", "/static/site.css", "/img/logo.png", "/search", "/health"}
	agents := []string{"curl/8.5.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15", "python-requests/2.31.0", "okhttp/4.12.0"}
	statuses := []int{200, 200, 200, 200, 200, 304, 301, 404, 403, 500, 502}
	t := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	for b.Len() < size {
		t = t.Add(time.Duration(rng.IntN(20000)) * time.Microsecond)
		status := statuses[rng.IntN(len(statuses))]
		target := fmt.Sprintf("10.0.%d.%d:8080", rng.IntN(4), 10+rng.IntN(6))
		path := paths[rng.IntN(len(paths))]
		if rng.IntN(2) == 0 {
			path += "?id=" + strconv.Itoa(rng.IntN(100000))
		}
		fmt.Fprintf(&b, `https %s app/my-loadbalancer/50dc6c495c0c9188 %d.%d.%d.%d:%d %s %.3f %.3f %.3f %d %d %d %d "GET https://www.example.com:443%s HTTP/2.0" %q TLS_AES_128_GCM_SHA256 TLSv1.3 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-%08x-%024x" "www.example.com" "arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 0 %s "forward" "-" "-" "%s" "%d" "-" "-" TID_%020x "-" "-" "-"`+"\n",
			t.Format("2006-01-02T15:04:05.000000Z"), 198, 51, rng.IntN(256), rng.IntN(256), 1024+rng.IntN(60000), target,
			float64(rng.IntN(3))/1000, float64(rng.IntN(400))/1000, float64(rng.IntN(2))/1000, status, status,
			200+rng.IntN(800), 300+rng.IntN(90000), path, agents[rng.IntN(len(agents))], t.Unix(), rng.Uint64()&(1<<63-1),
			t.Add(-time.Duration(rng.IntN(50))*time.Millisecond).Format("2006-01-02T15:04:05.000000Z"), target, status, rng.Uint64()&(1<<63-1))
	}
	raw = b.Bytes()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(raw); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return raw, z.Bytes()
}

// objectTransport answers every request with one object, as S3's GetObject does:
// the SDK's request signing and response handling run, no server does.
type objectTransport struct{ body []byte }

func (o objectTransport) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header: http.Header{"Etag": {`"0123456789abcdef0123456789abcdef"`}, "Content-Type": {"application/octet-stream"},
			"Content-Length": {strconv.Itoa(len(o.body))}},
		ContentLength: int64(len(o.body)), Body: io.NopCloser(bytes.NewReader(o.body))}, nil
}

// discardIntake counts what it is given.
type discardIntake struct{ records atomic.Int64 }

func (d *discardIntake) Store(_ context.Context, r component.Records) error {
	d.records.Add(int64(len(r.Records)))
	return nil
}

func (d *discardIntake) DeadLetter(context.Context, ...component.Letter) error { return nil }

// BenchmarkReadObject measures the s3 source's stage without an S3 server: the SDK's
// GetObject answered from memory, gunzip, line splitting and chunking of one 8 MiB
// (uncompressed) ALB object per iteration, into an intake that discards (discard) or
// the intake stream of an ingest-only node (embedded JetStream, sync always, one
// store per 256 KiB chunk: stream). MB/s is of uncompressed log bytes; gzip-MB/s of
// the objects as stored in S3; MB/cpu-s is per CPU second of this process (all its
// threads), which the machine's other tenants distort far less than wall time.
func BenchmarkReadObject(b *testing.B) {
	raw, zipped := albBenchObject(b, benchObjectBytes)
	for _, into := range []string{"discard", "stream"} {
		b.Run(into, func(b *testing.B) {
			cfg := s3source.NewConfig()
			r, err := s3source.NewReader(cfg, s3source.FormatAuto, component.NewMetrics(prometheus.NewRegistry()).For("source", "s3"), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			r.S3 = s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://s3.bench.invalid"), UsePathStyle: true,
				Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), HTTPClient: objectTransport{body: zipped}})
			d := &discardIntake{}
			r.Intake = d
			if into == "stream" {
				r.Intake = ingestNode(b).Intake("s3", s3source.FormatAuto)
			}
			key := "AWSLogs/123456789012/elasticloadbalancing/us-east-2/2026/12/07/bench-%d.log.gz"
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), testutil.SelfCPU()
			for i := range b.N {
				if err := r.Ingest(context.Background(), s3source.ObjectRef{Bucket: "lb-logs", Key: fmt.Sprintf(key, i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(zipped))*float64(b.N)/time.Since(start).Seconds()/1e6, "gzip-MB/s")
			b.ReportMetric(float64(len(raw))*float64(b.N)/(testutil.SelfCPU()-cpu).Seconds()/1e6, "MB/cpu-s")
			if into == "discard" && d.records.Load() != int64(b.N)*int64(bytes.Count(raw, []byte("\n"))) {
				b.Fatalf("%d records stored, want %d per object", d.records.Load(), bytes.Count(raw, []byte("\n")))
			}
		})
	}
}

// ingestNode starts an ingest-only node (its one source is an idle HTTP listener)
// whose intake stream the benchmark stores into.
func ingestNode(b *testing.B) *pipeline.Pipeline {
	b.Helper()
	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = filepath.Join(b.TempDir(), "data")
	cfg.Admin.Address = ""
	cfg.Role = config.RoleIngest
	hc := httpsource.NewConfig()
	hc.Address = "127.0.0.1:0"
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "idle", Type: "http", Format: "json", FormatOptions: opts, Settings: hc}}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.DiscardHandler), Version: "bench", Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	return p
}

// BenchmarkNotifiedObjects measures the whole s3 source on moto: b.N gzip ALB objects
// of 8 MiB (uncompressed) are in a bucket before the clock starts; then their S3
// event notifications are sent to the queue, and the clock stops when the source has
// received each, downloaded it from moto, stored every line in the intake stream of
// an ingest-only node (embedded JetStream, sync always) and deleted its message.
// moto (one Python process) serves the downloads, on the same two cores: run with
// -benchtime 20x.
func BenchmarkNotifiedObjects(b *testing.B) {
	raw, zipped := albBenchObject(b, benchObjectBytes)
	for _, inFlight := range []int{1, 4} {
		b.Run(fmt.Sprintf("in_flight=%d", inFlight), func(b *testing.B) {
			m := testutil.StartMoto(b)
			const bucket = "lb-logs"
			m.Bucket(b, bucket)
			q, err := m.SQS(b).CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("bench")})
			if err != nil {
				b.Fatal(err)
			}
			queueURL := aws.ToString(q.QueueUrl)
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = fmt.Sprintf("AWSLogs/123456789012/elasticloadbalancing/us-east-2/2026/12/07/123456789012_elasticloadbalancing_us-east-2_app.my-lb.50dc6c495c0c9188_20261207T15%02dZ_10.0.0.1_%06d.log.gz", i%60, i)
				m.Put(b, bucket, keys[i], zipped)
			}

			reg := components.Builtin()
			cfg := config.Defaults()
			cfg.DataDir = filepath.Join(b.TempDir(), "data")
			cfg.Admin.Address = ""
			cfg.Role = config.RoleIngest
			sc := s3source.NewConfig()
			sc.QueueURL, sc.Endpoint, sc.AccessKeyID, sc.SecretAccessKey = queueURL, m.Endpoint(), "test", "test"
			sc.WaitTime, sc.MaxInFlight = time.Second, inFlight
			cfg.Sources = []*config.Source{{Name: "s3logs", Type: "s3", Format: "auto", Settings: sc}}
			if err := cfg.Validate(); err != nil {
				b.Fatal(err)
			}
			p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.DiscardHandler), Version: "bench", Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				_ = p.Stop(ctx)
			})
			src := p.Sources()["s3logs"].(*s3source.Source)

			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			start, cpu, motoCPU := time.Now(), testutil.SelfCPU(), m.CPU()
			for i := 0; i < len(keys); i += 10 {
				var entries []sqstypes.SendMessageBatchRequestEntry
				for j := i; j < min(i+10, len(keys)); j++ {
					body := fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":%d}}}]}`,
						bucket, keys[j], len(zipped))
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(body)})
				}
				if _, err := m.SQS(b).SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries}); err != nil {
					b.Fatal(err)
				}
			}
			testutil.Eventually(b, 10*time.Minute, "every object stored", func() bool {
				return src.Stats().Objects.Load() >= int64(b.N)
			})
			b.StopTimer()
			elapsed := time.Since(start).Seconds()
			// CPU per byte of each side: vigil's process (the source and the embedded
			// JetStream) and moto's.
			b.ReportMetric(float64(len(raw))*float64(b.N)/(testutil.SelfCPU()-cpu).Seconds()/1e6, "MB/vigil-cpu-s")
			b.ReportMetric(float64(len(raw))*float64(b.N)/(m.CPU()-motoCPU).Seconds()/1e6, "MB/moto-cpu-s")
			b.ReportMetric(float64(len(zipped))*float64(b.N)/elapsed/1e6, "gzip-MB/s")
			b.ReportMetric(float64(src.Stats().Records.Load())/elapsed, "records/s")
			if want := int64(b.N) * int64(bytes.Count(raw, []byte("\n"))); src.Stats().Records.Load() != want {
				b.Fatalf("%d records stored, want %d", src.Stats().Records.Load(), want)
			}
			testutil.Eventually(b, 30*time.Second, "every message deleted", func() bool { return m.QueueEmpty(b, queueURL) })
		})
	}
}
