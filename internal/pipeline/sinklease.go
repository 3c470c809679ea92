package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
)

// SinkLeaseBucket is the KV bucket of the sinks' leases on a cluster: one key per
// sink, whose value names the node that runs it ("<node id> <run>"). The bucket's
// TTL is buffer.lease_ttl.
const SinkLeaseBucket = "VIGIL_SINK_LEASE"

// leasedSink runs one sink on whichever process node holds the sink's lease, so that
// each sink has one writer at a time across the cluster (the archive's file names and
// journal, the S3 sink's manifests and every sink runner's delivered log assume one).
// Every process node runs a leasedSink per sink; the holder builds and starts a
// sinkRunner, the others stand by and try to take the lease every quarter of its TTL.
//
// The holder renews the key every third of the TTL. When it could not renew for
// half the TTL (counted from when it sent the last renewal that took), it stops its
// runner — within a further quarter of the TTL — so that it has stopped writing
// before the key expires and another node can take over. The batches it held and
// did not acknowledge come back to the new holder after ack_wait; what it wrote but
// could not acknowledge the sink recognises (the archive's journal on shared
// storage, the S3 sink's manifests, Elasticsearch's _id).
//
// A node takes back a lease held by an earlier run of itself at once: its node id
// is locked by the running process (see node), so that run is dead.
//
// start takes the lease when it is free and then starts the sink before it returns;
// stop stops the runner (when holding), releases the lease and returns before ctx
// ends. stop is idempotent and safe without start.
type leasedSink struct {
	name   string
	kv     jetstream.KeyValue
	ttl    time.Duration
	node   string // this node's id
	holder string // the lease value of this run
	log    *slog.Logger
	// build makes and starts a runner for a term of the lease.
	build func(ctx context.Context) (*sinkRunner, error)

	// seenRev is the revision of another node's lease this node last read, and
	// seenAt when it first read it (only the run goroutine uses them).
	seenRev uint64
	seenAt  time.Time

	mu       sync.Mutex
	runner   *sinkRunner
	terms    int
	stopWith context.Context

	cancel context.CancelFunc
	done   chan struct{}
}

// start tries the lease once, and when it gets it starts the sink before returning
// (so that on a single node, or the first process node up, the sink runs before
// processing starts, as on a node without leases); a sink that fails to start then
// fails start. Either way it goes on contending or holding in the background.
func (l *leasedSink) start(ctx context.Context) error {
	var first *sinkRunner
	rev, sent, err := l.acquire(ctx)
	if err == nil {
		if first, err = l.build(ctx); err != nil {
			l.release(rev)
			return fmt.Errorf("sink %s: %w", l.name, err)
		}
		l.took(first)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		if first != nil {
			l.term(runCtx, first, rev, sent)
		}
		l.run(runCtx)
	}()
	return nil
}

func (l *leasedSink) took(r *sinkRunner) {
	l.mu.Lock()
	l.runner = r
	l.terms++
	l.mu.Unlock()
	l.log.Info("sink lease: this node runs the sink", "sink", l.name)
}

// holding returns the running runner, nil while standing by.
func (l *leasedSink) holding() *sinkRunner {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runner
}

// Terms is how many times this node took the lease.
func (l *leasedSink) Terms() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.terms
}

func (l *leasedSink) stop(ctx context.Context) error {
	if l.cancel == nil {
		return nil
	}
	l.mu.Lock()
	l.stopWith = ctx
	l.mu.Unlock()
	l.cancel()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sink %s: did not stop before the deadline: %w", l.name, ctx.Err())
	}
}

// run contends for the lease until ctx ends, running the sink while it holds it.
func (l *leasedSink) run(ctx context.Context) {
	for ctx.Err() == nil {
		rev, sent, err := l.acquire(ctx)
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				l.log.Warn("sink lease: cannot reach the lease bucket", "sink", l.name, "err", err)
			}
			sleep(ctx, l.ttl/4)
			continue
		}
		r, err := l.build(ctx)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Error("sink lease: holding the lease but the sink does not start; handing it back", "sink", l.name, "err", err)
			}
			l.release(rev)
			sleep(ctx, l.ttl/4)
			continue
		}
		l.took(r)
		l.term(ctx, r, rev, sent)
	}
}

// term runs r while the lease is held: until ctx ends (then it stops r within the
// stop deadline and releases the lease) or the lease is lost (then it stops r within
// a quarter of the TTL, before the key can expire).
func (l *leasedSink) term(ctx context.Context, r *sinkRunner, rev uint64, sent time.Time) {
	lost := l.hold(ctx, &rev, sent)
	var stopCtx context.Context
	cancel := func() {}
	if lost {
		stopCtx, cancel = context.WithTimeout(context.Background(), l.ttl/4)
	} else {
		l.mu.Lock()
		stopCtx = l.stopWith
		l.mu.Unlock()
		if stopCtx == nil {
			stopCtx = context.Background()
		}
	}
	if err := r.stop(stopCtx); err != nil {
		l.log.Warn("sink lease: stopping the sink", "sink", l.name, "err", err)
	}
	cancel()
	l.mu.Lock()
	l.runner = nil
	l.mu.Unlock()
	if lost {
		l.log.Warn("sink lease: lost the lease; standing by", "sink", l.name)
		return
	}
	l.release(rev)
}

// op bounds one lease operation; it outlives ctx so that a stop can still release.
func (l *leasedSink) op(f func(ctx context.Context) error) error {
	c, cancel := context.WithTimeout(context.Background(), l.ttl/4)
	defer cancel()
	return f(c)
}

// get reads the lease with a budget of its own.
func (l *leasedSink) get() (jetstream.KeyValueEntry, error) {
	c, cancel := context.WithTimeout(context.Background(), l.ttl/4)
	defer cancel()
	return l.kv.Get(c, l.name)
}

// acquire takes the lease when nobody holds it or an earlier run of this node does.
// sent is when the request that took it was sent: the lease lasts at least ttl
// from then.
func (l *leasedSink) acquire(ctx context.Context) (rev uint64, sent time.Time, err error) {
	if ctx.Err() != nil {
		return 0, sent, ctx.Err()
	}
	err = l.op(func(c context.Context) error {
		sent = time.Now()
		r, err := l.kv.Create(c, l.name, []byte(l.holder))
		if err == nil {
			rev = r
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		e, gerr := l.get()
		if gerr != nil {
			if !errors.Is(gerr, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("reading the lease: %w", gerr)
			}
			return err
		}
		if !strings.HasPrefix(string(e.Value()), l.node+" ") {
			// Another node's. The key's TTL removes it when its holder stops renewing,
			// but the server's expiry can lag (seen after a server's restart), so this
			// node also times the holder itself: a revision unchanged for a whole TTL
			// since this node first read it means the holder has not renewed for
			// longer than that, and has stopped writing (hold). Take it over then,
			// replacing exactly that revision.
			now := time.Now()
			if e.Revision() != l.seenRev {
				l.seenRev, l.seenAt = e.Revision(), now
				return err
			}
			if now.Sub(l.seenAt) < l.ttl {
				return err
			}
			l.log.Warn("sink lease: the holder has not renewed the lease for its TTL; taking the sink over",
				"sink", l.name, "holder", string(e.Value()))
		}
		// Otherwise an earlier run of this node, now dead, or this run after it lost
		// the lease and stopped: take it back without waiting for it to expire.
		sent = time.Now()
		r, err = l.kv.Update(c, l.name, []byte(l.holder), e.Revision())
		rev = r
		return err
	})
	return rev, sent, err
}

// hold renews the lease until ctx ends (false) or the lease is lost (true).
func (l *leasedSink) hold(ctx context.Context, rev *uint64, lastOK time.Time) (lost bool) {
	t := time.NewTicker(max(l.ttl/10, 50*time.Millisecond))
	defer t.Stop()
	var failingSince time.Time // send time of the first failed renewal since the last good one
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if time.Since(lastOK) < l.ttl/3 {
			continue
		}
		sent := time.Now()
		if failingSince.IsZero() {
			failingSince = sent
		}
		var gone bool
		err := l.op(func(c context.Context) error {
			r, err := l.kv.Update(c, l.name, []byte(l.holder), *rev)
			if err == nil {
				*rev = r
				return nil
			}
			// A renewal whose answer was lost may have taken: then the key holds our
			// value under a newer revision.
			e, gerr := l.get()
			switch {
			case errors.Is(gerr, jetstream.ErrKeyNotFound):
				gone = true
			case gerr == nil && string(e.Value()) == l.holder:
				*rev = e.Revision()
				sent = failingSince // the earliest it can have been written
				return nil
			case gerr == nil:
				gone = true
			}
			return err
		})
		if err == nil {
			lastOK, failingSince = sent, time.Time{}
			continue
		}
		if gone {
			l.log.Warn("sink lease: the lease expired or another node holds it", "sink", l.name)
			return true
		}
		if time.Since(lastOK) >= l.ttl/2 {
			l.log.Warn("sink lease: could not renew the lease for half its TTL; stopping before it expires", "sink", l.name, "err", err)
			return true
		}
	}
}

// release hands the lease back (when still ours), so that another node can take
// the sink over at once.
func (l *leasedSink) release(rev uint64) {
	_ = l.op(func(c context.Context) error { return l.kv.Delete(c, l.name, jetstream.LastRevision(rev)) })
}

// newSinkRunner builds sink sc and its runner; nothing is started.
func (p *Pipeline) newSinkRunner(sc *config.Sink) (*sinkRunner, error) {
	f, ok := p.opts.Registry.Sinks[sc.Type]
	if !ok {
		return nil, fmt.Errorf("sink %s: unknown type %q", sc.Name, sc.Type)
	}
	st := p.st
	snk, err := f.New(sc.Settings, component.SinkDeps{Name: sc.Name, Sink: sc, DataDir: p.cfg.DataDir,
		Log: p.log.With("sink", sc.Name), Metrics: p.metrics,
		DeadLetter: func(ctx context.Context, letters ...component.Letter) error {
			return storeLetters(ctx, st, p.letters, letters)
		}})
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
	}
	return &sinkRunner{st: st, cfg: sc, buffer: p.cfg.Buffer, memory: p.cfg.Limits, sink: snk, log: p.log, dataDir: p.cfg.DataDir, letters: p.letters,
		counters: p.metrics.For("sink", sc.Name), pruneEvery: p.pruneEvery}, nil
}

// startLeasedSinks declares the lease bucket and starts contending for each sink's
// lease. A sink that cannot be built fails Start here, on every node alike.
func (p *Pipeline) startLeasedSinks(ctx context.Context) error {
	kv, err := p.st.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: SinkLeaseBucket,
		Description: "Vigil sink leases: the process node that runs each sink", TTL: p.cfg.Buffer.LeaseTTL,
		Storage: jetstream.FileStorage, Replicas: p.st.Replicas()})
	if err != nil {
		return fmt.Errorf("sink lease bucket: %w", err)
	}
	// Reads of a lease must be the leader's: a KV bucket answers gets from any
	// replica ("direct get"), and a lagging one can show a lease that is gone or miss
	// one that exists. Bind a handle while direct gets are off, so that its gets go
	// to the stream leader (another node's CreateOrUpdateKeyValue may turn them on
	// again for the bucket; this handle keeps reading from the leader).
	if st, err := p.st.JetStream().Stream(ctx, "KV_"+SinkLeaseBucket); err == nil {
		if cfg := st.CachedInfo().Config; cfg.AllowDirect {
			cfg.AllowDirect = false
			if _, err := p.st.JetStream().UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("sink lease bucket: %w", err)
			}
		}
	}
	if kv, err = p.st.JetStream().KeyValue(ctx, SinkLeaseBucket); err != nil {
		return fmt.Errorf("sink lease bucket: %w", err)
	}
	run := newRunID()
	for _, sc := range p.cfg.Sinks {
		if _, err := p.newSinkRunner(sc); err != nil {
			return err
		}
		l := &leasedSink{name: sc.Name, kv: kv, ttl: p.cfg.Buffer.LeaseTTL, node: p.node.id,
			holder: p.node.id + " " + run, log: p.log,
			build: func(ctx context.Context) (*sinkRunner, error) {
				r, err := p.newSinkRunner(sc)
				if err != nil {
					return nil, err
				}
				if err := r.start(ctx); err != nil {
					stopCtx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
					defer cancel()
					_ = r.stop(stopCtx)
					return nil, err
				}
				return r, nil
			}}
		p.leased = append(p.leased, l)
		if err := l.start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// newRunID tells this run of a node from its earlier ones.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
