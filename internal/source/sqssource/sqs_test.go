package sqssource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/sqssource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// queue is one queue on a moto server, with a plain client to send and inspect.
type queue struct {
	moto   *testutil.Moto
	client *sqs.Client
	url    string
}

func newQueue(t *testing.T, m *testutil.Moto, name string) *queue {
	t.Helper()
	c := sqs.NewFromConfig(aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")},
		func(o *sqs.Options) { o.BaseEndpoint = aws.String(m.Endpoint()) })
	out, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return &queue{moto: m, client: c, url: aws.ToString(out.QueueUrl)}
}

func (q *queue) send(t *testing.T, bodies ...string) {
	t.Helper()
	for i := 0; i < len(bodies); i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j, b := range bodies[i:min(i+10, len(bodies))] {
			// Every message carries a String, a Number and a Binary attribute.
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(b),
				MessageAttributes: map[string]types.MessageAttributeValue{
					"origin": {DataType: aws.String("String"), StringValue: aws.String("vigil-test")},
					"seq":    {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(i + j))},
					"blob":   {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2}},
				}})
		}
		out, err := q.client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("send: %v %v", err, out)
		}
	}
}

// count returns the messages in the queue, visible and in flight.
func (q *queue) count(t *testing.T) int {
	t.Helper()
	out, err := q.client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	b, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return a + b
}

func (q *queue) config(mutate func(*sqssource.Config)) *sqssource.Config {
	c := sqssource.NewConfig()
	c.QueueURL = q.url
	c.Endpoint = q.moto.Endpoint()
	c.AccessKeyID, c.SecretAccessKey = "test", "test"
	c.WaitTime = time.Second
	c.VisibilityTimeout = 2 * time.Second
	if mutate != nil {
		mutate(c)
	}
	return c
}

// TestEndToEnd receives messages through a real pipeline into the archive: each
// exactly once, and the queue is empty afterwards.
func TestEndToEnd(t *testing.T) {
	m := testutil.StartMoto(t)
	q := newQueue(t, m, "events")
	const n = 45
	var bodies []string
	for i := range n {
		bodies = append(bodies, fmt.Sprintf(`{"tid":"m%d","message":"sqs test"}`, i))
	}
	q.send(t, bodies...)

	dir := runPipeline(t, q.config(nil))
	var docs []map[string]any
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d documents in the archive", n), func() bool {
		docs = testutil.ArchiveDocs(t, dir+"/archive")
		return len(docs) >= n
	})
	testutil.Eventually(t, 10*time.Second, "queue empty", func() bool { return q.count(t) == 0 })
	seen := map[string]int{}
	for _, d := range testutil.ArchiveDocs(t, dir+"/archive") {
		seen[fmt.Sprint(d["tid"])]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("m%d", i)]; c != 1 {
			t.Errorf("m%d archived %d times, want once", i, c)
		}
	}
	if len(seen) != n {
		t.Errorf("archive has %d distinct messages, want %d", len(seen), n)
	}
	// Each event carries its message's ID, system attributes and message attributes.
	ids := map[string]bool{}
	for _, d := range docs {
		tid := fmt.Sprint(d["tid"])
		id, _ := testutil.Field(d, sqssource.FieldMessageID).(string)
		ids[id] = true
		sent, err := time.Parse(time.RFC3339Nano, fmt.Sprint(testutil.Field(d, sqssource.FieldSentTimestamp)))
		// A store slower than the visibility timeout at startup may see a second receive.
		receives, _ := strconv.Atoi(fmt.Sprint(testutil.Field(d, sqssource.FieldReceiveCount)))
		if id == "" || err != nil || time.Since(sent) > 5*time.Minute || time.Since(sent) < 0 || receives < 1 ||
			testutil.Field(d, sqssource.FieldAttributes+"origin") != "vigil-test" ||
			"m"+fmt.Sprint(testutil.Field(d, sqssource.FieldAttributes+"seq")) != tid ||
			testutil.Field(d, sqssource.FieldAttributes+"blob") != "AAEC" {
			t.Errorf("event %s: sqs fields %v, sent %v (%v)", tid, testutil.Field(d, "aws.sqs"), sent, err)
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct message IDs on %d events, want %d", len(ids), len(docs), n)
	}
}

// runPipeline runs a pipeline with the sqs source "queue" configured by c and a
// file archive, and returns its data directory (the archive is dir/archive).
func runPipeline(t *testing.T, c *sqssource.Config) string {
	t.Helper()
	dir := t.TempDir()
	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	a := archivesink.NewConfig()
	a.MaxAge = 200 * time.Millisecond
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "queue", Type: "sqs", Format: "json", FormatOptions: opts, Settings: c}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	return dir
}

// TestRedeliveredStoredOnce: when deleting a stored batch fails, SQS delivers its
// messages again after their visibility timeout; the source knows them as stored
// and deletes them without storing them again, however SQS batches them, so each
// is archived once, from its first receive.
func TestRedeliveredStoredOnce(t *testing.T) {
	m := testutil.StartMoto(t)
	// A proxy in front of moto refuses the first DeleteMessageBatch call.
	target, _ := url.Parse(m.Endpoint())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "AmazonSQS.DeleteMessageBatch" && refused.Add(1) <= 1 {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"com.amazon.coral.service#AccessDeniedException","message":"test: delete refused"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	q := newQueue(t, m, "redelivered")
	const n = 10
	var bodies []string
	for i := range n {
		bodies = append(bodies, fmt.Sprintf(`{"tid":"m%d"}`, i))
	}
	q.send(t, bodies...)
	dir := runPipeline(t, q.config(func(c *sqssource.Config) { c.Endpoint = srv.URL; c.MaxInFlight = 1 }))
	testutil.Eventually(t, 30*time.Second, "queue empty after the refused delete", func() bool { return refused.Load() > 1 && q.count(t) == 0 })
	var docs []map[string]any
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d documents in the archive", n), func() bool {
		docs = testutil.ArchiveDocs(t, dir+"/archive")
		return len(docs) >= n
	})
	time.Sleep(time.Second) // a duplicate would be archived by now
	docs = testutil.ArchiveDocs(t, dir+"/archive")
	seen := map[string]int{}
	redelivered := 0
	for _, d := range docs {
		seen[fmt.Sprint(d["tid"])]++
		if testutil.Field(d, sqssource.FieldReceiveCount) != "1" {
			redelivered++
		}
	}
	for i := range n {
		if c := seen[fmt.Sprintf("m%d", i)]; c != 1 {
			t.Errorf("m%d archived %d times, want once", i, c)
		}
	}
	if len(docs) != n || redelivered != 0 {
		t.Errorf("%d documents (%d from the second receive), want %d, each from its first receive", len(docs), redelivered, n)
	}
}

// TestSlowReceiveStoredOnce: an answer to ReceiveMessage that arrives after the
// visibility timeout (a slow network or a loaded machine) lets another receive
// loop take the same messages; each is still archived once and the queue empties.
func TestSlowReceiveStoredOnce(t *testing.T) {
	m := testutil.StartMoto(t)
	// A proxy in front of moto holds the first answer that carries messages for 3s,
	// longer than the 2s visibility timeout.
	target, _ := url.Parse(m.Endpoint())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var held atomic.Int32
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Header.Get("X-Amz-Target") != "AmazonSQS.ReceiveMessage" {
			return nil
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte("ReceiptHandle")) && held.Add(1) == 1 {
			time.Sleep(3 * time.Second)
		}
		return nil
	}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	q := newQueue(t, m, "slowreceive")
	const n = 10
	var bodies []string
	for i := range n {
		bodies = append(bodies, fmt.Sprintf(`{"tid":"m%d"}`, i))
	}
	q.send(t, bodies...)
	// The intake here drops no duplicate unit (the stream would drop a unit of the
	// same messages): what keeps each message to one store is the source itself.
	in := &intake{}
	startSource(t, q.config(func(c *sqssource.Config) { c.Endpoint = srv.URL; c.MaxInFlight = 3; c.MaxMessages = 10 }), in)
	testutil.Eventually(t, 30*time.Second, "queue empty", func() bool { return held.Load() > 1 && q.count(t) == 0 })
	time.Sleep(time.Second) // a second store would be done by now
	_, recs, _ := in.snapshot()
	seen := map[string]int{}
	for _, r := range recs {
		seen[r]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf(`{"tid":"m%d"}`, i)]; c != 1 {
			t.Errorf("m%d stored %d times, want once", i, c)
		}
	}
}

// TestBatchReceive: one ReceiveMessage takes up to max_messages messages, stored as
// one unit in the order received, each record with its own message's fields.
func TestBatchReceive(t *testing.T) {
	m := testutil.StartMoto(t)
	q := newQueue(t, m, "batched")
	var bodies []string
	for i := range 10 {
		bodies = append(bodies, fmt.Sprintf(`{"n":%d}`, i))
	}
	q.send(t, bodies...)
	in := &intake{}
	startSource(t, q.config(func(c *sqssource.Config) { c.MaxInFlight = 1 }), in)
	testutil.Eventually(t, 20*time.Second, "all stored and deleted", func() bool {
		_, recs, _ := in.snapshot()
		return len(recs) == 10 && q.count(t) == 0
	})
	in.mu.Lock()
	defer in.mu.Unlock()
	most := 0
	for _, u := range in.units {
		most = max(most, len(u.Records))
		if len(u.RecordFields) != len(u.Records) || !strings.HasPrefix(u.ID, "sqs:") {
			t.Fatalf("unit %+v: want one field map per record and an sqs: ID", u)
		}
		for i, rec := range u.Records {
			f := u.RecordFields[i]
			var body struct{ N int }
			_ = json.Unmarshal(rec, &body)
			if f[sqssource.FieldMessageID] == "" || f[sqssource.FieldAttributes+"seq"] != strconv.Itoa(body.N) || f[sqssource.FieldAttributes+"origin"] != "vigil-test" {
				t.Errorf("record %s: fields %v, want its own message's ID and attributes", rec, f)
			}
		}
	}
	if most < 2 {
		t.Errorf("%d receives for 10 messages, none with more than one: not batched", len(in.units))
	}
}

// intake is a controllable component.Intake.
type intake struct {
	mu      sync.Mutex
	fail    bool
	delay   time.Duration
	calls   int
	records []string
	units   []component.Records // stored units, Records copied
	letters []component.Letter
	// onStore, when set, sees every Store call (under mu).
	onStore func(component.Records)
}

func (in *intake) Store(ctx context.Context, recs component.Records) error {
	in.mu.Lock()
	in.calls++
	if in.onStore != nil {
		in.onStore(recs)
	}
	fail, delay := in.fail, in.delay
	in.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return fmt.Errorf("test: %w", component.ErrUnavailable)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	u := recs
	u.Records = nil
	for _, r := range recs.Records {
		in.records = append(in.records, string(r))
		u.Records = append(u.Records, append([]byte(nil), r...))
	}
	in.units = append(in.units, u)
	return nil
}

func (in *intake) DeadLetter(_ context.Context, letters ...component.Letter) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.letters = append(in.letters, letters...)
	return nil
}

func (in *intake) snapshot() (calls int, records []string, letters []component.Letter) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls, append([]string(nil), in.records...), append([]component.Letter(nil), in.letters...)
}

func startSource(t *testing.T, cfg *sqssource.Config, in component.Intake) *sqssource.Source {
	t.Helper()
	src := sqssource.New(cfg, component.SourceDeps{Name: "queue", Source: &config.Source{Name: "queue", Type: "sqs", Format: "json"},
		Intake: in, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = src.Stop(ctx)
	})
	return src
}

// TestDeletedOnlyAfterStore: while the intake stream fails, a message is not
// deleted and comes back after its visibility timeout; once storing works it is
// stored and deleted.
func TestDeletedOnlyAfterStore(t *testing.T) {
	m := testutil.StartMoto(t)
	q := newQueue(t, m, "unstored")
	q.send(t, `{"n":1}`)
	in := &intake{fail: true}
	var ids []string // the unit ID of every store attempt
	in.onStore = func(r component.Records) { ids = append(ids, r.ID) }
	startSource(t, q.config(func(c *sqssource.Config) { c.MaxInFlight = 1 }), in)

	// Received, refused, visible again after 2s, received again.
	testutil.Eventually(t, 20*time.Second, "the message received again after a failed store", func() bool {
		calls, _, _ := in.snapshot()
		return calls >= 2
	})
	in.mu.Lock()
	if len(ids) < 2 || ids[0] != ids[1] || !strings.HasPrefix(ids[0], "sqs:") {
		t.Errorf("unit IDs of the attempts %q: want the same sqs:<message id> each time, so the stream drops a second store", ids)
	}
	in.mu.Unlock()
	if c := q.count(t); c != 1 {
		t.Fatalf("queue holds %d messages while storing fails, want 1", c)
	}
	in.mu.Lock()
	in.fail = false
	in.mu.Unlock()
	testutil.Eventually(t, 20*time.Second, "stored and deleted", func() bool {
		_, recs, _ := in.snapshot()
		return len(recs) == 1 && q.count(t) == 0
	})
}

// TestVisibilityExtended: a store slower than the visibility timeout does not let
// another receive loop take the same message.
func TestVisibilityExtended(t *testing.T) {
	m := testutil.StartMoto(t)
	q := newQueue(t, m, "slow")
	q.send(t, `{"n":1}`)
	// Extended every 2s; without that it would be visible again 4s after receipt,
	// while storing takes 6s.
	in := &intake{delay: 6 * time.Second}
	startSource(t, q.config(func(c *sqssource.Config) { c.MaxInFlight = 3; c.VisibilityTimeout = 4 * time.Second }), in)
	testutil.Eventually(t, 30*time.Second, "stored and deleted", func() bool {
		_, recs, _ := in.snapshot()
		return len(recs) >= 1 && q.count(t) == 0
	})
	if calls, recs, _ := in.snapshot(); calls != 1 || len(recs) != 1 {
		t.Fatalf("store called %d times with %d records, want once: visibility was not extended", calls, len(recs))
	}
}

// TestSNSEnvelope: notifications are unwrapped to their Message; a subscription
// confirmation is dead-lettered; all are deleted.
func TestSNSEnvelope(t *testing.T) {
	m := testutil.StartMoto(t)
	q := newQueue(t, m, "sns")
	// The body SNS delivers to an SQS subscription without raw message delivery
	// (Amazon SNS Developer Guide, "Amazon SNS message and JSON formats").
	note := `{"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324","TopicArn":"arn:aws:sns:us-east-1:123456789012:alerts",` +
		`"Subject":"x","Message":"{\"tid\":\"inner\"}","Timestamp":"2026-12-07T12:00:00.000Z","SignatureVersion":"1",` +
		`"MessageAttributes":{"severity":{"Type":"String","Value":"high"}},` +
		`"Signature":"EXAMPLE","SigningCertURL":"https://sns.us-east-1.amazonaws.com/x.pem","UnsubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}`
	confirm := `{"Type":"SubscriptionConfirmation","MessageId":"165545c9-2a5c-472c-8df2-7ff2be2b3b1b","Token":"abc","TopicArn":"arn:aws:sns:us-east-1:123456789012:alerts","Message":"You have chosen to subscribe"}`
	q.send(t, note, confirm)
	in := &intake{}
	startSource(t, q.config(func(c *sqssource.Config) { c.SNSEnvelope = true }), in)
	testutil.Eventually(t, 20*time.Second, "both handled and deleted", func() bool {
		_, recs, letters := in.snapshot()
		return len(recs)+len(letters) == 2 && q.count(t) == 0
	})
	_, recs, letters := in.snapshot()
	if len(recs) != 1 || recs[0] != `{"tid":"inner"}` {
		t.Errorf("records %q, want the notification's Message", recs)
	}
	if len(letters) != 1 || string(letters[0].Original) != confirm || letters[0].Stage != "intake" {
		t.Errorf("dead letters %+v, want the confirmation", letters)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.units[0].RecordFields[0]
	if f[sqssource.FieldSNSTopicARN] != "arn:aws:sns:us-east-1:123456789012:alerts" || f[sqssource.FieldSNSMessageID] != "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324" ||
		f[sqssource.FieldSNSSubject] != "x" || f[sqssource.FieldSNSTimestamp] != "2026-12-07T12:00:00.000Z" ||
		f[sqssource.FieldSNSAttributes+"severity"] != "high" || f[sqssource.FieldMessageID] == "" {
		t.Errorf("fields of the notification %v: want the envelope's topic, message id, subject, timestamp and attributes", f)
	}
}
