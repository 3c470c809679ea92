package s3source_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/s3source"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
)

const queueName = "log-events"

// env is a moto server with a bucket whose notifications go to a queue.
type env struct {
	moto     *testutil.Moto
	s3       *s3.Client
	sqs      *sqs.Client
	queueURL string
	bucket   string
}

func newEnv(t *testing.T, bucket string) *env {
	t.Helper()
	m := testutil.StartMoto(t)
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	e := &env{moto: m, bucket: bucket,
		s3:  s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint()), UsePathStyle: true, Credentials: creds}),
		sqs: sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint()), Credentials: creds}),
	}
	ctx := context.Background()
	q, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queueName)})
	if err != nil {
		t.Fatal(err)
	}
	e.queueURL = aws.ToString(q.QueueUrl)
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String("arn:aws:sqs:us-east-1:" + testutil.MotoAccount + ":" + queueName),
			Events:   []s3types.Event{"s3:ObjectCreated:*"},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) put(t *testing.T, bucket, key string, body []byte) {
	t.Helper()
	_, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) send(t *testing.T, body string) {
	t.Helper()
	if _, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(e.queueURL), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
}

// queueEmpty reports whether no message is waiting or in flight.
func (e *env) queueEmpty(t *testing.T) bool {
	out, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(e.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
}

func gz(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zst(t *testing.T, data []byte) []byte {
	w, _ := zstd.NewWriter(nil)
	defer w.Close()
	return w.EncodeAll(data, nil)
}

// albLog is a real-shaped ALB access log of n lines: the conformance lines, with
// distinct trace IDs so that each line is a distinct document.
func albLog(t *testing.T, tag string, n int) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/alb.log")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Replace(lines[i%len(lines)], "Root=1-", fmt.Sprintf("Root=%s%d-", tag, i), 1))
		b.WriteString("\n")
	}
	return []byte(b.String())
}

func startPipeline(t *testing.T, dir string, e *env, mutate func(*s3source.Config)) (*pipeline.Pipeline, *s3source.Source) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	cfg.Buffer.AckWait = 5 * time.Second
	sc := s3source.NewConfig()
	sc.QueueURL, sc.Endpoint, sc.AccessKeyID, sc.SecretAccessKey = e.queueURL, e.moto.Endpoint(), "test", "test"
	sc.WaitTime = time.Second
	sc.ChunkBytes = 4 << 10 // several parts per object
	a := archivesink.NewConfig()
	a.MaxAge = 200 * time.Millisecond
	cfg.Sources = []*config.Source{{Name: "s3logs", Type: "s3", Format: "auto", KeepOriginal: true, Settings: sc}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// After validation: tests may go below the limits (a short visibility timeout).
	if mutate != nil {
		mutate(sc)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p, p.Sources()["s3logs"].(*s3source.Source)
}

// byDataset counts archived documents by event.dataset and fails on a repeated
// event.id or event.original.
func byDataset(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	seen := map[string]bool{}
	for _, d := range testutil.ArchiveDocs(t, filepath.Join(dir, "archive")) {
		out[fmt.Sprint(testutil.Field(d, "event.dataset"))]++
		for _, f := range []string{"event.id", "event.original"} {
			v := fmt.Sprint(f, "=", testutil.Field(d, f))
			if seen[v] {
				t.Errorf("duplicate %s", v)
			}
			seen[v] = true
		}
	}
	return out
}

func TestNotifiedObjects(t *testing.T) {
	const bucket = "lb-logs"
	e := newEnv(t, bucket)
	dir := t.TempDir()
	_, src := startPipeline(t, dir, e, nil)
	ctx := context.Background()

	// An ALB log, gzip, where the load balancer writes it: S3 announces it.
	const albLines = 500
	e.put(t, bucket, "prod/AWSLogs/123456789012/elasticloadbalancing/us-east-2/2026/01/02/123456789012_elasticloadbalancing_us-east-2_app.my-lb.50dc6c495c0c9188_20260102T0305Z_10.0.0.1_2x9m0xr5.log.gz", gz(t, albLog(t, "a", albLines)))
	// A CloudTrail file and its digest (skipped).
	ct, err := os.ReadFile("testdata/cloudtrail.json")
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, bucket, "AWSLogs/123456789012/CloudTrail/us-east-1/2026/01/02/123456789012_CloudTrail_us-east-1_20260102T0305Z_abc.json.gz", gz(t, ct))
	e.put(t, bucket, "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/01/02/123456789012_CloudTrail-Digest_us-east-1_x.json.gz", gz(t, []byte(`{"digest":1}`)))
	// No rule matches: dead-lettered.
	e.put(t, bucket, "misc/notes.txt", []byte("hello\n"))

	// Objects in another bucket that sends no notifications, announced by hand in
	// the shapes SNS and EventBridge deliver.
	const quiet = "quiet-logs"
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(quiet)}); err != nil {
		t.Fatal(err)
	}
	snsKey := "AWSLogs/123456789012/elasticloadbalancing/eu-west-1/2026/01/02/sns file.log.zst"
	e.put(t, quiet, snsKey, zst(t, albLog(t, "s", 7)))
	inner := fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":10}}}]}`,
		quiet, strings.ReplaceAll(snsKey, " ", "+"))
	e.send(t, fmt.Sprintf(`{"Type":"Notification","MessageId":"m1","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Subject":"Amazon S3 Notification","Message":%q}`, inner))
	ebKey := "AWSLogs/123456789012/elasticloadbalancing/eu-west-1/2026/01/02/eventbridge.log"
	e.put(t, quiet, ebKey, albLog(t, "e", 3))
	e.send(t, fmt.Sprintf(`{"version":"0","id":"e1","detail-type":"Object Created","source":"aws.s3","account":"123456789012","region":"us-east-1","detail":{"version":"0","bucket":{"name":%q},"object":{"key":%q,"size":10,"etag":"x"},"reason":"PutObject"}}`, quiet, ebKey))
	// An object deleted before it is read.
	e.send(t, fmt.Sprintf(`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":"AWSLogs/123456789012/elasticloadbalancing/gone.log"}}}]}`, quiet))

	want := map[string]int{"aws.elb_logs": albLines + 7 + 3, "aws.cloudtrail": 7}
	var got map[string]int
	testutil.Eventually(t, 60*time.Second, "every record archived", func() bool {
		got = byDataset(t, dir)
		return got["aws.elb_logs"] >= want["aws.elb_logs"] && got["aws.cloudtrail"] >= want["aws.cloudtrail"]
	})
	testutil.Eventually(t, 30*time.Second, "every message deleted", func() bool { return e.queueEmpty(t) })
	got = byDataset(t, dir)
	for ds, n := range want {
		if got[ds] != n {
			t.Errorf("%s: %d documents, want %d", ds, got[ds], n)
		}
	}
	// Each event says where it came from.
	lines := map[string]bool{}
	for _, d := range testutil.ArchiveDocs(t, filepath.Join(dir, "archive")) {
		key := fmt.Sprint(testutil.Field(d, "aws.s3.object.key"))
		if testutil.Field(d, "aws.s3.bucket.name") == nil || key == "<nil>" {
			t.Fatalf("no bucket or key: %v", d)
		}
		if strings.HasSuffix(key, ".log.gz") && strings.Contains(key, "elasticloadbalancing/us-east-2") {
			lines[fmt.Sprint(testutil.Field(d, "aws.s3.object.line"))] = true
		}
		if strings.Contains(key, "CloudTrail") && testutil.Field(d, "aws.s3.object.line") != nil {
			t.Errorf("a whole-file record has a line number: %v", d)
		}
	}
	if len(lines) != albLines || !lines["1"] || !lines[fmt.Sprint(albLines)] {
		t.Errorf("ALB line numbers: %d distinct, want 1..%d", len(lines), albLines)
	}
	st := src.Stats()
	if st.Missing.Load() != 1 || st.Skipped.Load() != 1 || st.DeadLettered.Load() != 1 {
		t.Errorf("missing %d (want 1), skipped %d (want 1), dead-lettered %d (want 1)", st.Missing.Load(), st.Skipped.Load(), st.DeadLettered.Load())
	}
}

// TestRedeliveryStoresNoDuplicate leaves the message of a fully stored object
// undeleted, as a crash between storing and deleting would: SQS hands it out again
// after its visibility timeout, the object is read and stored again, and the
// archive still holds each line once, because each part is stored under the same
// message ID and the intake stream drops the repeat.
func TestRedeliveryStoresNoDuplicate(t *testing.T) {
	const bucket = "lb-logs"
	e := newEnv(t, bucket)
	dir := t.TempDir()
	var deliveries atomic.Int32
	p, src := startPipeline(t, dir, e, func(c *s3source.Config) { c.VisibilityTimeout = 2 * time.Second })
	src.SetBeforeDelete(func(body string) bool {
		if strings.Contains(body, "s3:TestEvent") {
			return true
		}
		return deliveries.Add(1) > 1 // "crash" before the first delete
	})
	const lines = 300
	e.put(t, bucket, "AWSLogs/123456789012/elasticloadbalancing/us-east-2/2026/01/02/big.log.gz", gz(t, albLog(t, "r", lines)))
	testutil.Eventually(t, 60*time.Second, "the message handled twice and deleted", func() bool {
		return deliveries.Load() >= 2 && e.queueEmpty(t)
	})
	if n := src.Stats().Objects.Load(); n != 2 {
		t.Errorf("object read %d times, want 2", n)
	}
	var got map[string]int
	testutil.Eventually(t, 30*time.Second, "every line archived", func() bool {
		got = byDataset(t, dir)
		return got["aws.elb_logs"] >= lines
	})
	// The intake stream holds each part once: the second read's parts were dropped
	// as duplicates before processing could see them.
	info, err := p.Stream().JetStream().Stream(context.Background(), stream.IntakeStream)
	if err != nil {
		t.Fatal(err)
	}
	parts := src.Stats().Parts.Load()
	if msgs := info.CachedInfo().State.Msgs; parts < 4 || int64(msgs) != parts/2 {
		t.Errorf("intake stream holds %d messages after two reads of %d parts each", msgs, parts/2)
	}
	if got = byDataset(t, dir); got["aws.elb_logs"] != lines {
		t.Errorf("aws.elb_logs: %d documents, want %d", got["aws.elb_logs"], lines)
	}
}

// slowIntake takes its time over the first store, as a large object would.
type slowIntake struct {
	stores atomic.Int32
	delay  time.Duration
}

func (s *slowIntake) Store(ctx context.Context, _ component.Records) error {
	if s.stores.Add(1) == 1 {
		select {
		case <-time.After(s.delay): // the work, not a wait for something
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *slowIntake) DeadLetter(context.Context, ...component.Letter) error { return nil }

// TestVisibilityExtended: an object that takes longer than the visibility timeout
// is not handed out again meanwhile (the source extends the timeout), and its
// message is deleted once stored.
func TestVisibilityExtended(t *testing.T) {
	e := newEnv(t, "lb-logs")
	cfg := s3source.NewConfig()
	cfg.QueueURL, cfg.Endpoint, cfg.AccessKeyID, cfg.SecretAccessKey = e.queueURL, e.moto.Endpoint(), "test", "test"
	cfg.WaitTime, cfg.VisibilityTimeout, cfg.MaxInFlight = time.Second, time.Second, 2
	in := &slowIntake{delay: 4 * time.Second}
	src, err := s3source.New(cfg, component.SourceDeps{Name: "s3", Intake: in,
		Metrics: component.NewMetrics(prometheus.NewRegistry()), Source: &config.Source{Format: "auto"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Stop(context.Background())
	e.put(t, "lb-logs", "AWSLogs/123456789012/elasticloadbalancing/us-east-1/slow.log", albLog(t, "v", 3))
	testutil.Eventually(t, 30*time.Second, "the object stored and its message deleted", func() bool {
		return src.Stats().Objects.Load() == 1 && e.queueEmpty(t)
	})
	if n := in.stores.Load(); n != 1 {
		t.Errorf("object stored %d times, want once (the message was handed out again while in progress)", n)
	}
}
