package kinesissource

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
)

// shardEnd is the checkpoint of a shard read to its end (closed by a reshard).
const shardEnd = "SHARD_END"

// Source is the kinesis source.
type Source struct {
	cfg      *Config
	deps     component.SourceDeps
	log      *slog.Logger
	counters *component.Counters
	client   *kinesis.Client
	kv       jetstream.KeyValue
	node     string

	// runCtx ends the coordinator and the shard readers (Stop); storeCtx ends a
	// store still running when Stop's deadline passes.
	runCtx      context.Context
	runCancel   context.CancelFunc
	storeCtx    context.Context
	storeCancel context.CancelFunc
	wg          sync.WaitGroup
	ready       atomic.Bool
	stopOnce    sync.Once
	// wake asks the coordinator for an early round (a shard finished).
	wake chan struct{}

	// consumerARN is the enhanced fan-out consumer, set by the coordinator before
	// its first round.
	consumerARN string

	mu      sync.Mutex
	readers map[string]*reader // by shard ID; the coordinator's
	// children are shards learned from a SubscribeToShardEvent's ChildShards at a
	// shard's end, by ID: candidates even before ListShards lists them.
	children map[string]types.Shard
}

var _ component.Source = (*Source)(nil)

// reader is one shard this node holds a lease on and reads.
type reader struct {
	shard  types.Shard
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	rev     uint64    // the lease entry's revision
	expires time.Time // by this node's clock, from the start of the last renewal
	margin  time.Duration

	// cpRev is the revision of the shard's checkpoint entry as this reader last read
	// or wrote it (0: none); the reader's goroutine's.
	cpRev uint64
}

// valid reports whether the lease still holds by this node's clock, with a margin
// of a tenth of the TTL for clock skew and pauses: the reader stops before another
// node can see the lease expired.
func (r *reader) valid() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Now().Before(r.expires.Add(-r.margin))
}

// lease is a lease entry's value.
type lease struct {
	Owner   string `json:"owner"`
	Expires int64  `json:"expires"` // Unix milliseconds
}

// New returns the source; nothing is called before Start.
func New(cfg *Config, deps component.SourceDeps) *Source {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	return &Source{cfg: cfg, deps: deps, log: deps.Log, counters: deps.Metrics.For("source", deps.Name),
		node: hex.EncodeToString(nonce[:]), wake: make(chan struct{}, 1), readers: map[string]*reader{},
		children: map[string]types.Shard{}}
}

var bucketUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// Bucket is the key-value bucket of a kinesis source's leases and checkpoints.
func Bucket(source string) string { return "KINESIS_" + bucketUnsafe.ReplaceAllString(source, "_") }

// Start opens the state bucket, builds the Kinesis client and starts the
// coordinator. It does not wait for Kinesis: an unreachable stream is logged and
// retried.
func (s *Source) Start(ctx context.Context) error {
	if s.deps.KV == nil {
		return fmt.Errorf("kinesis source %s: needs the node's stream for leases and checkpoints", s.deps.Name)
	}
	kv, err := s.deps.KV(ctx, Bucket(s.deps.Name))
	if err != nil {
		return fmt.Errorf("kinesis source %s: state bucket: %w", s.deps.Name, err)
	}
	s.kv = kv
	awsCfg, err := s.cfg.ClientConfig.Load(ctx, awsconfig.WithRetryMaxAttempts(3))
	if err != nil {
		return fmt.Errorf("kinesis source %s: %w", s.deps.Name, err)
	}
	s.client = kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) { o.BaseEndpoint = s.cfg.BaseEndpoint() })
	s.runCtx, s.runCancel = context.WithCancel(context.Background())
	s.storeCtx, s.storeCancel = context.WithCancel(context.Background())
	s.wg.Go(s.coordinate)
	s.ready.Store(true)
	return nil
}

// Stop ends the readers, waits for pages being stored to be stored and
// checkpointed, and releases this node's leases so that another node (or this one
// restarted) takes the shards over at once. At ctx's deadline a store still
// running is abandoned; its page is read again by the shard's next reader.
func (s *Source) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.ready.Store(false)
		if s.runCancel == nil {
			return
		}
		s.runCancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.storeCancel()
			<-done
		}
		s.storeCancel()
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for id, r := range s.readers {
			r.mu.Lock()
			rev := r.rev
			r.mu.Unlock()
			_ = s.kv.Delete(rctx, s.leaseKey(id), jetstream.LastRevision(rev))
		}
		_ = s.kv.Delete(rctx, "node."+s.node)
	})
	return nil
}

// Ready implements component.Source.
func (s *Source) Ready() bool { return s.ready.Load() }

// Describe implements component.Source.
func (s *Source) Describe() string { return "kinesis " + s.cfg.Stream }

func (s *Source) leaseKey(shard string) string { return "lease." + s.cfg.Stream + "." + shard }
func (s *Source) cpKey(shard string) string    { return "cp." + s.cfg.Stream + "." + shard }

// coordinate runs rounds until Stop: renew leases, list shards, take or give up
// shards, start readers. It owns s.readers' membership.
func (s *Source) coordinate() {
	tick := min(s.cfg.ShardSyncInterval, s.cfg.LeaseTTL/3)
	if s.cfg.EnhancedFanOut.Enabled && !s.awaitConsumer() {
		return
	}
	for {
		if err := s.round(); err != nil && s.runCtx.Err() == nil {
			s.counters.Error("shard_sync")
			s.log.Warn("kinesis source: shard sync failed; will retry", "stream", s.cfg.Stream, "error", err)
		}
		select {
		case <-s.runCtx.Done():
			for _, r := range s.snapshot() {
				<-r.done
			}
			return
		case <-time.After(tick):
		case <-s.wake:
		}
	}
}

func (s *Source) snapshot() []*reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*reader, 0, len(s.readers))
	for _, r := range s.readers {
		out = append(out, r)
	}
	return out
}

// round is one coordination step.
func (s *Source) round() error {
	ctx := s.runCtx
	now := time.Now()
	// Announce this node, so that the others count it in the fair share.
	val, _ := json.Marshal(lease{Owner: s.node, Expires: now.Add(s.cfg.LeaseTTL).UnixMilli()})
	if _, err := s.kv.Put(ctx, "node."+s.node, val); err != nil {
		return fmt.Errorf("announcing the node: %w", err)
	}
	// Renew held leases; drop readers whose lease is gone or whose shard ended.
	for _, r := range s.snapshot() {
		select {
		case <-r.done:
			s.drop(r, true)
			continue
		default:
		}
		r.mu.Lock()
		rev := r.rev
		r.mu.Unlock()
		val, _ := json.Marshal(lease{Owner: s.node, Expires: now.Add(s.cfg.LeaseTTL).UnixMilli()})
		nrev, err := s.kv.Update(ctx, s.leaseKey(aws.ToString(r.shard.ShardId)), val, rev)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("kinesis source: lost a shard lease", "shard", aws.ToString(r.shard.ShardId), "error", err)
			r.cancel()
			<-r.done
			s.drop(r, false)
			continue
		}
		r.mu.Lock()
		r.rev, r.expires = nrev, now.Add(s.cfg.LeaseTTL)
		r.mu.Unlock()
	}

	shards, err := s.listShards(ctx)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, sh := range shards {
		listed[aws.ToString(sh.ShardId)] = true
	}
	s.mu.Lock()
	for id, sh := range s.children {
		if listed[id] {
			delete(s.children, id) // ListShards knows it now
		} else {
			shards = append(shards, sh)
			listed[id] = true
		}
	}
	s.mu.Unlock()
	finished := func(id string) (bool, error) {
		if id == "" || !listed[id] {
			return true, nil // no parent, or a parent past retention
		}
		e, err := s.kv.Get(ctx, s.cpKey(id))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return string(e.Value()) == shardEnd, nil
	}
	// Eligible shards: not finished, parents finished.
	type cand struct {
		shard types.Shard
		entry jetstream.KeyValueEntry // nil when never leased
		held  bool                    // by a live lease of any node
	}
	var cands []cand
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		if done, err := finished(id); err != nil {
			return err
		} else if done {
			continue
		}
		p1, err := finished(aws.ToString(sh.ParentShardId))
		if err != nil {
			return err
		}
		p2, err := finished(aws.ToString(sh.AdjacentParentShardId))
		if err != nil {
			return err
		}
		if !p1 || !p2 {
			continue
		}
		c := cand{shard: sh}
		e, err := s.kv.Get(ctx, s.leaseKey(id))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			c.entry = e
			var l lease
			if json.Unmarshal(e.Value(), &l) == nil && l.Expires > now.UnixMilli() {
				c.held = true
			}
		}
		cands = append(cands, c)
	}
	nodes, err := s.liveNodes(ctx, now)
	if err != nil {
		return err
	}
	fair := int(math.Ceil(float64(len(cands)) / float64(max(1, nodes))))
	s.mu.Lock()
	mine := len(s.readers)
	s.mu.Unlock()
	// Over the fair share (another node joined): give up the excess, so it can
	// take them.
	for _, r := range s.snapshot() {
		if mine <= fair {
			break
		}
		r.cancel()
		<-r.done
		s.drop(r, true)
		mine--
	}
	for _, c := range cands {
		if mine >= fair {
			break
		}
		id := aws.ToString(c.shard.ShardId)
		if c.held {
			continue
		}
		val, _ := json.Marshal(lease{Owner: s.node, Expires: now.Add(s.cfg.LeaseTTL).UnixMilli()})
		var rev uint64
		if c.entry == nil {
			rev, err = s.kv.Create(ctx, s.leaseKey(id), val)
		} else {
			rev, err = s.kv.Update(ctx, s.leaseKey(id), val, c.entry.Revision())
		}
		if err != nil {
			// Another node was faster; the next round sees its lease.
			continue
		}
		s.log.Info("kinesis source: took a shard", "stream", s.cfg.Stream, "shard", id)
		rctx, cancel := context.WithCancel(s.runCtx)
		r := &reader{shard: c.shard, cancel: cancel, done: make(chan struct{}), rev: rev, expires: now.Add(s.cfg.LeaseTTL),
			margin: s.cfg.LeaseTTL / 10}
		s.mu.Lock()
		s.readers[id] = r
		s.mu.Unlock()
		mine++
		go func() {
			defer close(r.done)
			defer cancel()
			if s.cfg.EnhancedFanOut.Enabled {
				s.subscribe(rctx, r)
			} else {
				s.read(rctx, r)
			}
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}()
	}
	return nil
}

// drop forgets a reader that ended; with release it also deletes its lease.
func (s *Source) drop(r *reader, release bool) {
	id := aws.ToString(r.shard.ShardId)
	s.mu.Lock()
	delete(s.readers, id)
	s.mu.Unlock()
	s.counters.MillisBehind(id).Set(0)
	if release {
		r.mu.Lock()
		rev := r.rev
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.kv.Delete(ctx, s.leaseKey(id), jetstream.LastRevision(rev))
	}
}

// liveNodes counts the nodes that announced themselves within a lease TTL, and
// deletes the entries of nodes gone for longer.
func (s *Source) liveNodes(ctx context.Context, now time.Time) (int, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "node.*")
	if err != nil {
		return 0, err
	}
	n := 0
	for key := range lister.Keys() {
		e, err := s.kv.Get(ctx, key)
		if err != nil {
			continue
		}
		var l lease
		if json.Unmarshal(e.Value(), &l) == nil && l.Expires > now.UnixMilli() {
			n++
		} else if l.Expires < now.Add(-s.cfg.LeaseTTL).UnixMilli() {
			_ = s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		}
	}
	return max(n, 1), nil
}

func (s *Source) listShards(ctx context.Context) ([]types.Shard, error) {
	var out []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(s.cfg.Stream)}
	for {
		page, err := s.client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing the shards of %s: %w", s.cfg.Stream, err)
		}
		out = append(out, page.Shards...)
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

// read reads one shard until its end, ctx's end or the loss of its lease.
func (s *Source) read(ctx context.Context, r *reader) {
	id := aws.ToString(r.shard.ShardId)
	log := s.log.With("stream", s.cfg.Stream, "shard", id)
	var iter *string
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
	for ctx.Err() == nil {
		if !r.valid() {
			log.Warn("kinesis source: lease not renewed in time; stopping the shard's reader")
			return
		}
		if iter == nil {
			it, err := s.iterator(ctx, r)
			if err != nil {
				s.counters.Error("get_shard_iterator")
				if !fail("GetShardIterator", err) {
					return
				}
				continue
			}
			if it == nil { // finished before this reader
				return
			}
			iter = it
		}
		// No SDK retries: the reader backs off itself and counts every throttled call.
		out, err := s.client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(int32(s.cfg.MaxRecords))},
			func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
		var throttled *types.ProvisionedThroughputExceededException
		var expired *types.ExpiredIteratorException
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &throttled):
			s.counters.Error("throughput_exceeded")
			if !fail("GetRecords throttled", err) {
				return
			}
			continue
		case errors.As(err, &expired):
			iter = nil // again from the checkpoint
			continue
		case err != nil:
			s.counters.Error("get_records")
			if !fail("GetRecords", err) {
				return
			}
			continue
		}
		backoff = 0
		if out.MillisBehindLatest != nil {
			s.counters.MillisBehind(id).Set(float64(*out.MillisBehindLatest))
		}
		if len(out.Records) > 0 {
			if !s.store(ctx, r, out.Records, log) {
				return
			}
		}
		if out.NextShardIterator == nil {
			if s.checkpoint(r, shardEnd, log) {
				log.Info("kinesis source: shard finished")
			}
			return
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 && !wait(s.cfg.PollInterval) {
			return
		}
	}
}

// iterator returns where to read the shard: after its checkpoint, or start_at for
// a shard never read (a child of a reshard always from its start). Nil when the
// checkpoint says the shard is finished.
func (s *Source) iterator(ctx context.Context, r *reader) (*string, error) {
	pos, err := s.position(ctx, r)
	if err != nil || pos == nil {
		return nil, err
	}
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(s.cfg.Stream), ShardId: r.shard.ShardId,
		ShardIteratorType: types.ShardIteratorType(pos.Type), StartingSequenceNumber: pos.SequenceNumber, Timestamp: pos.Timestamp}
	out, err := s.client.GetShardIterator(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.ShardIterator, nil
}

// position reads the shard's checkpoint (and its revision, for the reader's next
// checkpoint) and returns where to read: after the checkpoint; without one, at
// start_at, or a child of a reshard from its start (TRIM_HORIZON). Nil when the
// checkpoint says the shard is finished.
func (s *Source) position(ctx context.Context, r *reader) (*types.StartingPosition, error) {
	sh := r.shard
	e, err := s.kv.Get(ctx, s.cpKey(aws.ToString(sh.ShardId)))
	r.cpRev = 0
	if err == nil {
		r.cpRev = e.Revision()
	}
	switch {
	case err == nil && string(e.Value()) == shardEnd:
		return nil, nil
	case err == nil:
		return &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(string(e.Value()))}, nil
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, err
	case sh.ParentShardId != nil:
		return &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}, nil
	case s.cfg.StartAt == StartLatest:
		return &types.StartingPosition{Type: types.ShardIteratorTypeLatest}, nil
	case s.cfg.StartAt == StartAtTimestamp:
		return &types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(s.cfg.Timestamp)}, nil
	default:
		return &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}, nil
	}
}

// store stores one GetRecords page as one unit, retrying until it is stored, then
// writes the checkpoint. False when the reader must stop (Stop, or the lease ran
// out): the page is then read again by the shard's next reader, and its ID makes
// the stream drop it if it was stored after all.
func (s *Source) store(ctx context.Context, r *reader, recs []types.Record, log *slog.Logger) bool {
	id := aws.ToString(r.shard.ShardId)
	first, last := aws.ToString(recs[0].SequenceNumber), aws.ToString(recs[len(recs)-1].SequenceNumber)
	var records [][]byte
	size := 0
	for _, rec := range recs {
		size += len(rec.Data)
		records = append(records, deaggregate(rec.Data)...)
	}
	s.counters.Received(len(records), size)
	unit := component.Records{Received: time.Now(), Records: records, ID: s.cfg.Stream + "/" + id + "/" + first}
	backoff := time.Duration(0)
	for {
		if !r.valid() {
			return false
		}
		err := s.deps.Intake.Store(s.storeCtx, unit)
		if err == nil {
			break
		}
		s.counters.Error("store")
		if s.storeCtx.Err() != nil {
			return false
		}
		backoff = min(max(2*backoff, 200*time.Millisecond), 30*time.Second)
		log.Warn("kinesis source: storing a page failed; will retry", "records", len(records), "in", backoff, "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
	}
	return s.checkpoint(r, last, log)
}

// checkpoint writes the shard's checkpoint while the lease is held, by
// compare-and-set on the revision this reader read: if another node wrote the
// checkpoint since (it took the shard while this reader was stalled), the write
// fails and the reader stops, so a checkpoint never goes back. It finishes even
// while stopping: the records are stored.
func (s *Source) checkpoint(r *reader, seq string, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !r.valid() {
		return false
	}
	key := s.cpKey(aws.ToString(r.shard.ShardId))
	var rev uint64
	var err error
	if r.cpRev == 0 {
		rev, err = s.kv.Create(ctx, key, []byte(seq))
	} else {
		rev, err = s.kv.Update(ctx, key, []byte(seq), r.cpRev)
	}
	if err != nil {
		s.counters.Error("checkpoint")
		log.Warn("kinesis source: writing the checkpoint failed (or another node wrote it); stopping the shard's reader, the page may be read again (and dropped as a duplicate)", "error", err)
		return false
	}
	r.cpRev = rev
	return true
}
