package kinesissource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// Enhanced fan-out: the shards are read through a stream consumer with
// SubscribeToShard, which pushes the records over an HTTP/2 event stream. Leases,
// checkpoints, page IDs and the order of resharded shards are the polling reader's;
// only the way records arrive differs.

// subscriptionLifetime is how long Kinesis keeps a subscription open; the reader
// subscribes again then at the latest, from the last continuation sequence number.
const subscriptionLifetime = 5 * time.Minute

// minSubscription is the least time between two subscriptions of a shard: Kinesis
// allows one SubscribeToShard call per second per consumer and shard.
const minSubscription = time.Second

// consumerPoll is how often a CREATING consumer is described again.
const consumerPoll = 500 * time.Millisecond

// consumerName is the consumer the nodes share.
func (s *Source) consumerName() string {
	if n := s.cfg.EnhancedFanOut.ConsumerName; n != "" {
		return n
	}
	return "vigil-" + bucketUnsafe.ReplaceAllString(s.deps.Name, "_")
}

// awaitConsumer sets s.consumerARN: the configured consumer, or the one named
// consumer_name (registered when the stream has none), once it is ACTIVE. Failures
// are counted and retried. False when Stop came first.
func (s *Source) awaitConsumer() bool {
	ctx := s.runCtx
	backoff := time.Duration(0)
	for {
		arn, err := s.consumer(ctx)
		if err == nil {
			s.consumerARN = arn
			s.log.Info("kinesis source: enhanced fan-out consumer active", "stream", s.cfg.Stream, "consumer", arn)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.counters.Error("consumer")
		backoff = min(max(2*backoff, 200*time.Millisecond), 30*time.Second)
		s.log.Warn("kinesis source: enhanced fan-out consumer not available; will retry", "stream", s.cfg.Stream, "in", backoff, "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
	}
}

// consumer finds (or registers) the consumer and waits until it is ACTIVE.
func (s *Source) consumer(ctx context.Context) (string, error) {
	in := &kinesis.DescribeStreamConsumerInput{}
	if arn := s.cfg.EnhancedFanOut.ConsumerARN; arn != "" {
		in.ConsumerARN = aws.String(arn)
	} else {
		sum, err := s.client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.cfg.Stream)})
		if err != nil {
			return "", fmt.Errorf("describing stream %s: %w", s.cfg.Stream, err)
		}
		in.StreamARN, in.ConsumerName = sum.StreamDescriptionSummary.StreamARN, aws.String(s.consumerName())
		_, err = s.client.DescribeStreamConsumer(ctx, in)
		var notFound *types.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound):
			_, err = s.client.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: in.StreamARN, ConsumerName: in.ConsumerName})
			var inUse *types.ResourceInUseException
			if err != nil && !errors.As(err, &inUse) { // in use: another node registered it first
				return "", fmt.Errorf("registering consumer %s: %w", s.consumerName(), err)
			}
			s.log.Info("kinesis source: registered an enhanced fan-out consumer", "stream", s.cfg.Stream, "consumer", s.consumerName())
		case err != nil:
			return "", fmt.Errorf("describing consumer %s: %w", s.consumerName(), err)
		}
	}
	for {
		out, err := s.client.DescribeStreamConsumer(ctx, in)
		if err != nil {
			return "", fmt.Errorf("describing consumer: %w", err)
		}
		d := out.ConsumerDescription
		switch d.ConsumerStatus {
		case types.ConsumerStatusActive:
			return aws.ToString(d.ConsumerARN), nil
		case types.ConsumerStatusDeleting:
			return "", fmt.Errorf("consumer %s is being deleted", aws.ToString(d.ConsumerARN))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(consumerPoll):
		}
	}
}

// subscribe reads one shard with SubscribeToShard until its end, ctx's end or the
// loss of its lease: from the checkpoint (or start_at), then, at each new
// subscription, after the last continuation sequence number.
func (s *Source) subscribe(ctx context.Context, r *reader) {
	id := aws.ToString(r.shard.ShardId)
	log := s.log.With("stream", s.cfg.Stream, "shard", id)
	backoff := time.Duration(0)
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	fail := func(what string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		backoff = min(max(2*backoff, 200*time.Millisecond), 30*time.Second)
		log.Warn("kinesis source: will retry", "what", what, "in", backoff, "error", err)
		return wait(backoff)
	}
	var pos *types.StartingPosition
	for ctx.Err() == nil {
		if !r.valid() {
			log.Warn("kinesis source: lease not renewed in time; stopping the shard's reader")
			return
		}
		if pos == nil {
			p, err := s.position(ctx, r)
			if err != nil {
				s.counters.Error("get_checkpoint")
				if !fail("reading the checkpoint", err) {
					return
				}
				continue
			}
			if p == nil { // finished before this reader
				return
			}
			pos = p
		}
		started := time.Now()
		// No SDK retries: the reader backs off itself and counts every refusal. A
		// protocol of its own: the client's (smithy-go 1.28) decodes every event
		// stream with one codec whose fields each call writes unguarded, a data race
		// when shards are read at once (go test -race reports it). Today the fields
		// carry nothing from one call to the next, but the race is not ours to keep.
		out, err := s.client.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(s.consumerARN),
			ShardId: r.shard.ShardId, StartingPosition: pos}, func(o *kinesis.Options) {
			o.RetryMaxAttempts = 1
			o.Protocol = awsjson.New11(schemas.Kinesis_20131202)
		})
		var limited *types.LimitExceededException
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &limited):
			s.counters.Error("throughput_exceeded")
			if !fail("SubscribeToShard throttled", err) {
				return
			}
			continue
		case err != nil:
			// ResourceInUseException included: the consumer's previous subscription
			// to the shard (this node's, or a former owner's) is still open.
			s.counters.Error("subscribe")
			if !fail("SubscribeToShard", err) {
				return
			}
			continue
		}
		next, err := s.consume(ctx, r, out.GetStream(), pos, log)
		if next == nil {
			return
		}
		pos = next
		if err != nil {
			s.counters.Error("subscribe")
			if !fail("the subscription's event stream", err) {
				return
			}
			continue
		}
		backoff = 0
		if d := minSubscription - time.Since(started); d > 0 && !wait(d) {
			return
		}
	}
}

// consume stores the records of one subscription's events until the stream ends,
// and returns where to subscribe again (after the last continuation sequence
// number) with the stream's error. Nil when the reader must stop: the shard is
// finished, Stop, the lease ran out, or a page could not be stored.
func (s *Source) consume(ctx context.Context, r *reader, stream *kinesis.SubscribeToShardEventStream, pos *types.StartingPosition,
	log *slog.Logger) (*types.StartingPosition, error) {
	defer stream.Close()
	id := aws.ToString(r.shard.ShardId)
	renew := time.NewTimer(subscriptionLifetime)
	defer renew.Stop()
	check := time.NewTicker(max(s.cfg.LeaseTTL/10, 100*time.Millisecond))
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-check.C:
			if !r.valid() {
				log.Warn("kinesis source: lease not renewed in time; stopping the shard's reader")
				return nil, nil
			}
		case <-renew.C:
			return pos, nil
		case ev, ok := <-stream.Events():
			if !ok {
				return pos, stream.Err()
			}
			e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !ok {
				continue // an event type this SDK does not know
			}
			v := e.Value
			if v.MillisBehindLatest != nil {
				s.counters.MillisBehind(id).Set(float64(*v.MillisBehindLatest))
			}
			if len(v.Records) > 0 && !s.store(ctx, r, v.Records, log) {
				return nil, nil
			}
			if v.ContinuationSequenceNumber == nil {
				// The shard is closed and read to its end.
				s.learn(v.ChildShards)
				if s.checkpoint(r, shardEnd, log) {
					log.Info("kinesis source: shard finished", "children", len(v.ChildShards))
				}
				return nil, nil
			}
			pos = &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: v.ContinuationSequenceNumber}
		}
	}
}

// learn keeps the children a finished shard's last event named, so that the next
// round considers them even before ListShards lists them.
func (s *Source) learn(children []types.ChildShard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range children {
		if c.ShardId == nil {
			continue
		}
		sh := types.Shard{ShardId: c.ShardId, HashKeyRange: c.HashKeyRange}
		if len(c.ParentShards) > 0 {
			sh.ParentShardId = aws.String(c.ParentShards[0])
		}
		if len(c.ParentShards) > 1 {
			sh.AdjacentParentShardId = aws.String(c.ParentShards[1])
		}
		s.children[*c.ShardId] = sh
	}
}
