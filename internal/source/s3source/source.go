package s3source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/vigil-sec/vigil/internal/awsconf"
	"github.com/vigil-sec/vigil/internal/component"
)

// Source is the s3 source.
type Source struct {
	cfg    *Config
	deps   component.SourceDeps
	log    *slog.Logger
	reader *Reader
	sqs    *sqs.Client

	cancel  context.CancelFunc // ends receiving
	abandon context.CancelFunc // ends in-flight work when Stop's deadline passes
	wg      sync.WaitGroup
	ready   atomic.Bool
	once    sync.Once

	closeIdle func() // closes the HTTP client's idle connections

	// beforeDelete, in tests, may keep a message from being deleted.
	beforeDelete func(sqstypes.Message) bool
}

var _ component.Source = (*Source)(nil)

// New builds the source; clients are created in Start.
func New(cfg *Config, deps component.SourceDeps) (*Source, error) {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	format := FormatAuto
	if deps.Source != nil && deps.Source.Format != "" {
		format = deps.Source.Format
	}
	r, err := NewReader(cfg, format, deps.Metrics.For("source", deps.Name), log)
	if err != nil {
		return nil, err
	}
	r.Intake = deps.Intake
	r.Whole = deps.FormatWholeRecord
	if r.Whole == nil {
		whole := deps.WholeRecords
		r.Whole = func(f string) bool { return whole && f == format }
	}
	return &Source{cfg: cfg, deps: deps, log: log, reader: r}, nil
}

// Stats returns the source's object counts.
func (s *Source) Stats() *Stats { return &s.reader.Stats }

// Describe implements component.Source.
func (s *Source) Describe() string { return "s3 from SQS " + s.cfg.QueueURL }

// Ready implements component.Source.
func (s *Source) Ready() bool { return s.ready.Load() }

// Start implements component.Source: it builds the clients and starts receiving.
// The queue is not checked here, so that a node starts while AWS is unreachable;
// receive errors are logged and retried with backoff.
func (s *Source) Start(ctx context.Context) error {
	hc, closeIdle := awsconf.HTTPClient()
	s.closeIdle = closeIdle
	awsCfg, err := s.cfg.Load(ctx, awsconfig.WithHTTPClient(hc))
	if err != nil {
		return fmt.Errorf("s3 source %s: %w", s.deps.Name, err)
	}
	s.reader.S3 = s3.NewFromConfig(awsCfg, s.cfg.S3Options)
	s.sqs = sqs.NewFromConfig(awsCfg, func(o *sqs.Options) { o.BaseEndpoint = s.cfg.BaseEndpoint() })
	recvCtx, cancel := context.WithCancel(context.Background())
	workCtx, abandon := context.WithCancel(context.Background())
	s.cancel, s.abandon = cancel, abandon
	s.ready.Store(true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.receive(recvCtx, workCtx)
	}()
	return nil
}

// Stop implements component.Source: it stops receiving and waits for the messages
// in progress until ctx's deadline; those not finished then are abandoned
// undeleted, so SQS hands them out again after their visibility timeout.
func (s *Source) Stop(ctx context.Context) error {
	s.once.Do(func() {
		s.ready.Store(false)
		if s.cancel == nil {
			return
		}
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.abandon()
			<-done
		}
		s.abandon()
		s.closeIdle()
	})
	return nil
}

// receive long-polls the queue for as many messages as there are free slots, and
// hands each to a goroutine of its own.
func (s *Source) receive(ctx, work context.Context) {
	slots := make(chan struct{}, s.cfg.MaxInFlight)
	backoff := time.Second
	for ctx.Err() == nil {
		// Wait for one free slot, then take as many as are free (at most 10).
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
		for n < 10 {
			select {
			case slots <- struct{}{}:
				n++
				continue
			default:
			}
			break
		}
		out, err := s.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(s.cfg.QueueURL),
			MaxNumberOfMessages: int32(n),
			WaitTimeSeconds:     int32(s.cfg.WaitTime / time.Second),
			VisibilityTimeout:   int32(s.cfg.VisibilityTimeout / time.Second),
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
				sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			for range n {
				<-slots
			}
			if ctx.Err() != nil {
				return
			}
			s.reader.Counters.Error("sqs_receive")
			s.log.Warn("SQS receive failed; retrying", "queue", s.cfg.QueueURL, "in", backoff, "err", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		for range n - len(out.Messages) {
			<-slots
		}
		for _, m := range out.Messages {
			s.wg.Add(1)
			go func() {
				defer func() { <-slots; s.wg.Done() }()
				s.handle(work, m)
			}()
		}
	}
}

// handle reads every object of one message and deletes the message once all are
// stored. While it works it keeps the message hidden by extending its visibility.
// On failure the message is left alone: SQS hands it out again after its visibility
// timeout, and after the queue's maxReceiveCount moves it to the redrive (dead-letter)
// queue.
func (s *Source) handle(ctx context.Context, m sqstypes.Message) {
	refs, err := parseNotification([]byte(aws.ToString(m.Body)))
	if err != nil {
		// Not something a retry fixes: keep the body in the DLQ and delete it.
		l := component.Letter{Stage: "intake", Reason: "SQS message " + aws.ToString(m.MessageId) + ": " + err.Error(),
			Format: s.reader.Format, Time: time.Now(), Original: []byte(aws.ToString(m.Body)),
			ID: "sqs-dlq:" + aws.ToString(m.MessageId)}
		if derr := s.deps.Intake.DeadLetter(ctx, l); derr != nil {
			s.log.Warn("dead-lettering an unreadable SQS message failed; it will be received again", "err", derr)
			return
		}
		s.delete(ctx, m)
		return
	}
	stop := s.keepHidden(ctx, m)
	defer stop()
	for _, ref := range refs {
		if err := s.reader.Ingest(ctx, ref); err != nil {
			s.log.Warn("object not stored; the message will be received again", "bucket", ref.Bucket, "key", ref.Key,
				"receive_count", m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)], "err", err)
			return
		}
	}
	stop()
	if s.beforeDelete != nil && !s.beforeDelete(m) {
		return
	}
	s.delete(ctx, m)
}

func (s *Source) delete(ctx context.Context, m sqstypes.Message) {
	_, err := s.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(s.cfg.QueueURL), ReceiptHandle: m.ReceiptHandle})
	if err != nil {
		// The objects are stored: a redelivery re-stores them under the same message
		// IDs, which the intake drops as duplicates.
		s.reader.Counters.Error("sqs_delete")
		s.log.Warn("SQS delete failed; the message will be received again", "err", err)
	}
}

// keepHidden extends m's visibility timeout every half of it until the returned
// function is called (which waits for the extender to end).
func (s *Source) keepHidden(ctx context.Context, m sqstypes.Message) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.VisibilityTimeout / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_, err := s.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(s.cfg.QueueURL),
					ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(s.cfg.VisibilityTimeout / time.Second)})
				if err != nil && !errors.Is(err, context.Canceled) {
					s.reader.Counters.Error("sqs_change_visibility")
					s.log.Warn("extending the SQS message's visibility failed", "err", err)
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
