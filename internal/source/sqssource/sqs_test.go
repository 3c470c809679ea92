package sqssource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
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
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(b)})
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

	dir := t.TempDir()
	reg := components.Builtin()
	reg.Sources["sqs"] = components.SourceFactory{
		NewConfig: func() config.Component { return sqssource.NewConfig() },
		New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
			return sqssource.New(c.(*sqssource.Config), d), nil
		},
	}
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	a := archivesink.NewConfig()
	a.MaxAge = 200 * time.Millisecond
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "queue", Type: "sqs", Format: "json", FormatOptions: opts, Settings: q.config(nil)}}
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
}

// intake is a controllable component.Intake.
type intake struct {
	mu      sync.Mutex
	fail    bool
	delay   time.Duration
	calls   int
	records []string
	letters []component.Letter
}

func (in *intake) Store(ctx context.Context, recs component.Records) error {
	in.mu.Lock()
	in.calls++
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
	for _, r := range recs.Records {
		in.records = append(in.records, string(r))
	}
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
	startSource(t, q.config(func(c *sqssource.Config) { c.MaxInFlight = 1 }), in)

	// Received, refused, visible again after 2s, received again.
	testutil.Eventually(t, 20*time.Second, "the message received again after a failed store", func() bool {
		calls, _, _ := in.snapshot()
		return calls >= 2
	})
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
}
