package sqssource

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/vigil-sec/vigil/internal/component"
)

// Source is the sqs source.
type Source struct {
	cfg      *Config
	deps     component.SourceDeps
	log      *slog.Logger
	counters *component.Counters
	client   *sqs.Client

	// recvCtx ends the receive loops (Stop); storeCtx ends a store still running
	// when Stop's deadline passes.
	recvCtx     context.Context
	recvCancel  context.CancelFunc
	storeCtx    context.Context
	storeCancel context.CancelFunc
	wg          sync.WaitGroup
	ready       atomic.Bool
	stopOnce    sync.Once

	seen *seen // messages being stored and stored, against a second receive
}

// Bounds of the set of stored message IDs a source remembers.
const (
	seenKeepMin = 15 * time.Minute // at least; 10 visibility timeouts when longer
	seenMax     = 100_000          // about 10 MiB
)

var _ component.Source = (*Source)(nil)

// New returns the source; nothing is called before Start.
func New(cfg *Config, deps component.SourceDeps) *Source {
	return &Source{cfg: cfg, deps: deps, log: deps.Log, counters: deps.Metrics.For("source", deps.Name),
		seen: newSeen(max(seenKeepMin, 10*cfg.VisibilityTimeout), seenMax)}
}

// Start builds the SQS client and starts max_in_flight receive loops. It does not
// wait for the queue to answer: an unreachable queue is logged and retried.
func (s *Source) Start(ctx context.Context) error {
	// The HTTP timeout must outlast the long poll.
	timeout := s.cfg.WaitTime + 30*time.Second
	awsCfg, err := s.cfg.ClientConfig.Load(ctx,
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)),
		awsconfig.WithRetryMaxAttempts(3))
	if err != nil {
		return fmt.Errorf("sqs source %s: %w", s.deps.Name, err)
	}
	s.client = sqs.NewFromConfig(awsCfg, func(o *sqs.Options) { o.BaseEndpoint = s.cfg.BaseEndpoint() })
	s.recvCtx, s.recvCancel = context.WithCancel(context.Background())
	s.storeCtx, s.storeCancel = context.WithCancel(context.Background())
	for range s.cfg.MaxInFlight {
		s.wg.Go(s.loop)
	}
	s.ready.Store(true)
	return nil
}

// Stop ends the receive loops and waits for batches being stored to be stored and
// deleted; at ctx's deadline a store still running is abandoned, and its messages
// come back after their visibility timeout.
func (s *Source) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.ready.Store(false)
		if s.recvCancel == nil {
			return
		}
		s.recvCancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.storeCancel()
			<-done
		}
		s.storeCancel()
	})
	return nil
}

// Ready implements component.Source.
func (s *Source) Ready() bool { return s.ready.Load() }

// Describe implements component.Source.
func (s *Source) Describe() string { return "sqs " + s.cfg.QueueURL }

// loop receives, stores and deletes until Stop.
func (s *Source) loop() {
	backoff := time.Duration(0)
	for s.recvCtx.Err() == nil {
		out, err := s.client.ReceiveMessage(s.recvCtx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(s.cfg.QueueURL),
			MaxNumberOfMessages:         int32(s.cfg.MaxMessages),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: systemAttributes,
			WaitTimeSeconds:             int32(s.cfg.WaitTime / time.Second),
			VisibilityTimeout:           int32(s.cfg.VisibilityTimeout / time.Second),
		})
		if err == nil && len(out.Messages) > 0 {
			err = s.handle(out.Messages)
		}
		if err == nil {
			backoff = 0
			continue
		}
		if s.recvCtx.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
		s.log.Warn("sqs source: will retry", "queue", s.cfg.QueueURL, "in", backoff, "error", err)
		select {
		case <-s.recvCtx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// handle stores one received batch and deletes its messages once stored. On error
// nothing is deleted: the messages come back after their visibility timeout.
//
// The batch is one unit (one stream write): each record carries its message's ID
// and attributes as Records.RecordFields. The unit's ID is made of the batch's
// message IDs, so the same messages received again together (their delete failed)
// are dropped by the stream's duplicate detection within buffer.duplicate_window.
//
// A message this source has stored already (SQS handed it out again: its
// visibility ran out before the delete, or the delete failed) is deleted without
// being stored again, and counted as vigil_discarded_total{reason="duplicate"}. One
// that another receive loop is storing right now is left alone: it comes back
// after its visibility timeout, stored by then, and is deleted.
func (s *Source) handle(msgs []types.Message) error {
	received := time.Now()
	var again []types.Message // stored before: delete only
	fresh := msgs[:0:0]
	for _, m := range msgs {
		switch s.seen.claim(aws.ToString(m.MessageId), received) {
		case claimNew:
			fresh = append(fresh, m)
		case claimStored:
			again = append(again, m)
		}
	}
	if len(again) > 0 {
		s.counters.Discarded("duplicate", len(again))
	}
	err := s.storeAndDelete(fresh, received)
	if len(again) > 0 {
		err = errors.Join(err, s.delete(again))
	}
	return err
}

// storeAndDelete stores msgs, claimed by the caller, and deletes them once stored.
func (s *Source) storeAndDelete(msgs []types.Message, received time.Time) error {
	if len(msgs) == 0 {
		return nil
	}
	unit := component.Records{Received: received, Records: make([][]byte, 0, len(msgs)),
		RecordFields: make([]map[string]string, 0, len(msgs))}
	ids := make([]string, 0, len(msgs))
	var letters []component.Letter
	size := 0
	for _, m := range msgs {
		body := []byte(aws.ToString(m.Body))
		size += len(body)
		fields := messageFields(m)
		rec := body
		if s.cfg.SNSEnvelope {
			env, err := unwrapSNS(body)
			if err != nil {
				letters = append(letters, component.Letter{Stage: "intake", Reason: "sqs message " + aws.ToString(m.MessageId) + ": " + err.Error(),
					Source: s.deps.Name, Dataset: s.deps.Source.Dataset, Format: s.deps.Source.Format, Time: received,
					Original: body, ID: "sqs:" + aws.ToString(m.MessageId)})
				continue
			}
			rec = []byte(*env.Message)
			env.addFields(fields)
		}
		unit.Records = append(unit.Records, rec)
		unit.RecordFields = append(unit.RecordFields, fields)
		ids = append(ids, aws.ToString(m.MessageId))
	}
	unit.ID = batchID(ids)
	s.counters.Received(len(msgs), size)

	stopExtend := s.extendWhileStoring(msgs)
	err := s.store(unit, letters)
	stopExtend()
	claimed := make([]string, len(msgs))
	for i, m := range msgs {
		claimed[i] = aws.ToString(m.MessageId)
	}
	s.seen.done(claimed, err == nil, time.Now())
	if err != nil {
		s.counters.Error("store")
		return fmt.Errorf("storing %d messages: %w", len(msgs), err)
	}
	return s.delete(msgs)
}

// batchID names a set of messages independent of their order.
func batchID(ids []string) string {
	slices.Sort(ids)
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return "sqs:" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (s *Source) store(unit component.Records, letters []component.Letter) error {
	if len(letters) > 0 {
		if err := s.deps.Intake.DeadLetter(s.storeCtx, letters...); err != nil {
			return err
		}
		s.counters.DeadLettered("intake", len(letters))
	}
	if len(unit.Records) == 0 {
		return nil
	}
	return s.deps.Intake.Store(s.storeCtx, unit)
}

// Field names of what SQS (and SNS) tell about a message, added to its events.
const (
	FieldMessageID      = "aws.sqs.message_id"
	FieldSentTimestamp  = "aws.sqs.sent_timestamp"   // RFC 3339, from SentTimestamp
	FieldReceiveCount   = "aws.sqs.receive_count"    // ApproximateReceiveCount
	FieldMessageGroupID = "aws.sqs.message_group_id" // FIFO queues
	// FieldAttributes prefixes each message attribute: aws.sqs.attributes.<name>,
	// its string value (Binary attributes in base64).
	FieldAttributes = "aws.sqs.attributes."

	FieldSNSMessageID = "aws.sns.message_id"
	FieldSNSTopicARN  = "aws.sns.topic_arn"
	FieldSNSSubject   = "aws.sns.subject"
	FieldSNSTimestamp = "aws.sns.timestamp"
	// FieldSNSAttributes prefixes each SNS message attribute of the envelope.
	FieldSNSAttributes = "aws.sns.attributes."
)

// systemAttributes are the system attributes ReceiveMessage asks for.
var systemAttributes = []types.MessageSystemAttributeName{
	types.MessageSystemAttributeNameSentTimestamp,
	types.MessageSystemAttributeNameApproximateReceiveCount,
	types.MessageSystemAttributeNameMessageGroupId,
}

// messageFields returns the fields of m's events: its ID, system attributes and
// message attributes.
func messageFields(m types.Message) map[string]string {
	f := make(map[string]string, 3+len(m.MessageAttributes))
	f[FieldMessageID] = aws.ToString(m.MessageId)
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		f[FieldSentTimestamp] = time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
	}
	if c := m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]; c != "" {
		f[FieldReceiveCount] = c
	}
	if g := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]; g != "" {
		f[FieldMessageGroupID] = g
	}
	for name, a := range m.MessageAttributes {
		switch {
		case a.StringValue != nil:
			f[FieldAttributes+name] = *a.StringValue
		case a.BinaryValue != nil:
			f[FieldAttributes+name] = base64.StdEncoding.EncodeToString(a.BinaryValue)
		}
	}
	return f
}

// extendWhileStoring extends the messages' visibility every half visibility
// timeout until the returned func is called, so that a slow store does not let SQS
// hand them to another receiver.
func (s *Source) extendWhileStoring(msgs []types.Message) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(s.cfg.VisibilityTimeout / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
			for i, m := range msgs {
				entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
					ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(s.cfg.VisibilityTimeout / time.Second)}
			}
			out, err := s.client.ChangeMessageVisibilityBatch(s.storeCtx, &sqs.ChangeMessageVisibilityBatchInput{
				QueueUrl: aws.String(s.cfg.QueueURL), Entries: entries})
			if err == nil && len(out.Failed) > 0 {
				err = batchError(out.Failed)
			}
			if err != nil {
				s.counters.Error("extend_visibility")
				s.log.Warn("sqs source: extending visibility failed; the messages may be received twice", "queue", s.cfg.QueueURL, "error", err)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// delete removes stored messages. A message that fails to be deleted is received
// again and stored twice; that is counted and logged.
func (s *Source) delete(msgs []types.Message) error {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
	}
	// The records are stored: finish the delete even while stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.cfg.QueueURL), Entries: entries})
	if err == nil && len(out.Failed) > 0 {
		err = batchError(out.Failed)
	}
	if err != nil {
		s.counters.Error("delete")
		return fmt.Errorf("deleting stored messages (they will be received and stored again): %w", err)
	}
	return nil
}

func batchError(failed []types.BatchResultErrorEntry) error {
	errs := make([]error, 0, len(failed))
	for _, f := range failed {
		errs = append(errs, fmt.Errorf("entry %s: %s: %s", aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message)))
	}
	return errors.Join(errs...)
}

// snsEnvelope is the part of an SNS notification delivered to SQS (without raw
// message delivery) that matters here.
type snsEnvelope struct {
	Type      string  `json:"Type"`
	Message   *string `json:"Message"`
	MessageID string  `json:"MessageId"`
	TopicArn  string  `json:"TopicArn"`
	Subject   string  `json:"Subject"`
	Timestamp string  `json:"Timestamp"`
	// MessageAttributes are {"Type":…,"Value":…} objects; one of another shape is
	// skipped rather than failing the notification.
	MessageAttributes map[string]json.RawMessage `json:"MessageAttributes"`
}

// unwrapSNS reads an SNS Notification envelope.
func unwrapSNS(body []byte) (*snsEnvelope, error) {
	var env snsEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("sns_envelope is set but the body is not JSON: %v", err)
	}
	switch {
	case env.Type == "":
		return nil, errors.New("sns_envelope is set but the body has no Type; turn sns_envelope off for raw message delivery")
	case env.Type != "Notification":
		return nil, fmt.Errorf("SNS message of type %q, not Notification; confirm subscriptions outside Vigil", env.Type)
	case env.Message == nil:
		return nil, errors.New("SNS Notification without Message")
	}
	return &env, nil
}

// addFields adds the envelope's metadata to f.
func (env *snsEnvelope) addFields(f map[string]string) {
	for k, v := range map[string]string{FieldSNSMessageID: env.MessageID, FieldSNSTopicARN: env.TopicArn,
		FieldSNSSubject: env.Subject, FieldSNSTimestamp: env.Timestamp} {
		if v != "" {
			f[k] = v
		}
	}
	for name, raw := range env.MessageAttributes {
		var a struct {
			Value *string `json:"Value"`
		}
		if json.Unmarshal(raw, &a) == nil && a.Value != nil {
			f[FieldSNSAttributes+name] = *a.Value
		}
	}
}
