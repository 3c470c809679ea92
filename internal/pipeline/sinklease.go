package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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
	nc     *nats.Conn // for reads from the leader (readLease)
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
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.done = make(chan struct{})
	rev, sent, err := l.acquire(ctx)
	if err != nil {
		go func() { defer close(l.done); l.run(runCtx) }()
		return nil
	}
	built := make(chan error, 1)
	go func() {
		defer close(l.done)
		if l.term(runCtx, ctx, rev, sent, built) {
			l.run(runCtx)
		}
	}()
	if err := <-built; err != nil {
		cancel()
		<-l.done
		return fmt.Errorf("sink %s: %w", l.name, err)
	}
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
		select {
		case <-l.done: // stopped as the deadline passed
			return nil
		default:
		}
		return fmt.Errorf("sink %s: did not stop before the deadline: %w", l.name, ctx.Err())
	}
}

// run contends for the lease until ctx ends, running the sink while it holds it.
func (l *leasedSink) run(ctx context.Context) {
	var failingSince, warned time.Time
	for ctx.Err() == nil {
		rev, sent, err := l.acquire(ctx)
		if err != nil {
			// Standing by behind a live holder is the normal case; anything else (the
			// bucket unreachable, a write refused although nobody renews the lease) is
			// said, once per TTL while it lasts, so that a sink that runs nowhere is
			// never silent.
			now := time.Now()
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, errLeaseHeld):
				failingSince = time.Time{}
			default:
				if failingSince.IsZero() {
					failingSince = now
				}
				if now.Sub(warned) >= l.ttl {
					warned = now
					l.log.Warn("sink lease: cannot take the lease", "sink", l.name, "err", err,
						"failing_for", now.Sub(failingSince).Round(time.Millisecond))
				}
			}
			sleep(ctx, l.ttl/4)
			continue
		}
		failingSince = time.Time{}
		if !l.term(ctx, ctx, rev, sent, nil) {
			sleep(ctx, l.ttl/4)
		}
	}
}

// term is one term of the lease, taken at sent under revision rev: it renews the
// lease from the start, builds and starts the sink meanwhile (with buildCtx, ended
// when the lease is lost: a sink that takes long to start must not outlive the
// lease), and runs it until ctx ends (then it stops the sink within the stop
// deadline and releases the lease) or the lease is lost (then it stops the sink
// within a quarter of the TTL, before the key can expire). The build's outcome goes
// to built when not nil. It reports whether the sink started; when it did not, the
// lease is handed back.
func (l *leasedSink) term(ctx, buildCtx context.Context, rev uint64, sent time.Time, built chan<- error) bool {
	holdCtx, stopHold := context.WithCancel(ctx)
	defer stopHold()
	bctx, cancelBuild := context.WithCancel(buildCtx)
	defer cancelBuild()
	var lost bool // written by the holder goroutine; read after holdDone
	holdDone := make(chan struct{})
	go func() {
		defer close(holdDone)
		lost = l.hold(holdCtx, &rev, sent)
		cancelBuild()
	}()
	r, err := l.build(bctx)
	if built != nil {
		built <- err
	}
	if err != nil {
		stopHold()
		<-holdDone
		if ctx.Err() == nil && built == nil {
			l.log.Error("sink lease: holding the lease but the sink does not start; handing it back", "sink", l.name, "err", err)
		}
		if !lost {
			l.release(rev)
		}
		return false
	}
	l.took(r)
	<-holdDone
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
		return true
	}
	l.release(rev)
	return true
}

// op bounds one lease operation; it outlives ctx so that a stop can still release.
func (l *leasedSink) op(f func(ctx context.Context) error) error {
	c, cancel := context.WithTimeout(context.Background(), l.ttl/4)
	defer cancel()
	return f(c)
}

// leaseEntry is a sink's lease as the leader of the lease bucket's stream has it.
type leaseEntry struct {
	value   string // "<node id> <run>"
	rev     uint64 // 0: the key has no message (never taken, or expired)
	deleted bool   // a delete or purge marker: a released lease
}

// free reports whether nobody holds the lease.
func (e leaseEntry) free() bool { return e.rev == 0 || e.deleted }

// readLease reads sink's lease in bucket from the leader of the lease bucket's stream, with
// an explicit message-get request ($JS.API.STREAM.MSG.GET). A KV handle's Get may
// be a "direct get", which any replica answers, preferring one on the client's own
// server: a replica that lags answers with a lease that is gone, or one that is
// not the last, and a take-over that replaces that revision is refused for as long
// as the replica lags. The leader's answer is what its compare-and-set checks.
func readLease(ctx context.Context, nc *nats.Conn, bucket, sink string) (leaseEntry, error) {
	req, err := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + sink})
	if err != nil {
		return leaseEntry{}, err
	}
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return leaseEntry{}, err
	}
	var resp struct {
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return leaseEntry{}, fmt.Errorf("lease read: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == jsNoMessageFound:
		return leaseEntry{}, nil
	case resp.Error != nil:
		return leaseEntry{}, fmt.Errorf("lease read: %s (error %d)", resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return leaseEntry{}, errors.New("lease read: an answer without a message")
	}
	e := leaseEntry{value: string(resp.Message.Data), rev: resp.Message.Seq}
	if len(resp.Message.Hdrs) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Hdrs)
		if err != nil {
			return leaseEntry{}, fmt.Errorf("lease read: %w", err)
		}
		e.deleted = h.Get("KV-Operation") != "" || h.Get(jetstream.MarkerReasonHeader) != ""
	}
	return e, nil
}

// jsNoMessageFound is JetStream's error code for a message get that finds none.
const jsNoMessageFound = 10037

// read reads the lease from the leader with a budget of its own.
func (l *leasedSink) read() (leaseEntry, error) {
	c, cancel := context.WithTimeout(context.Background(), l.ttl/4)
	defer cancel()
	return readLease(c, l.nc, l.kv.Bucket(), l.name)
}

// wrongLastRevision tells a compare-and-set the server refused because the key's
// revision was not the one expected. JetStream reports that as error 10071, or as
// 10164 on a replicated stream when another write of the key is in flight.
func wrongLastRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// errLeaseHeld: another node holds the lease and renews it; not a failure.
var errLeaseHeld = errors.New("another node holds the lease")

// acquire takes the lease when nobody holds it, an earlier run of this node does,
// or its holder has not renewed it for a whole TTL. sent is when the request that
// took it was sent: the lease lasts at least ttl from then. Every decision rests on
// the leader's view: compare-and-set writes, and reads from the leader (readLease).
func (l *leasedSink) acquire(ctx context.Context) (rev uint64, sent time.Time, err error) {
	if ctx.Err() != nil {
		return 0, sent, ctx.Err()
	}
	err = l.op(func(c context.Context) error {
		sent = time.Now()
		// Create: expect no message for the key at all.
		r, err := l.kv.Update(c, l.name, []byte(l.holder), 0)
		if err == nil {
			rev = r
			return nil
		}
		if !wrongLastRevision(err) {
			return err
		}
		e, rerr := readLease(c, l.nc, l.kv.Bucket(), l.name)
		if rerr != nil {
			return fmt.Errorf("reading the lease: %w", rerr)
		}
		switch {
		case e.rev == 0:
			// Refused, yet the leader has no lease: it expired between the two
			// requests, or a write of it is in flight. Try again next time.
			return fmt.Errorf("the lease bucket refused a free lease: %w", err)
		case e.deleted:
			// Released: replace the marker.
		case strings.HasPrefix(e.value, l.node+" "):
			// An earlier run of this node, now dead, or this run after it lost the
			// lease and stopped: take it back without waiting for it to expire.
		default:
			// Another node's. The key's TTL removes it when its holder stops renewing,
			// but the server's expiry can lag (seen after a server's restart), so this
			// node also times the holder itself: a revision unchanged for a whole TTL
			// since this node first read it means the holder has not renewed for
			// longer than that, and has stopped writing (hold). Take it over then,
			// replacing exactly that revision.
			now := time.Now()
			if e.rev != l.seenRev {
				l.seenRev, l.seenAt = e.rev, now
				return errLeaseHeld
			}
			if now.Sub(l.seenAt) < l.ttl {
				return errLeaseHeld
			}
			l.log.Warn("sink lease: the holder has not renewed the lease for its TTL; taking the sink over",
				"sink", l.name, "holder", e.value)
		}
		sent = time.Now()
		r, err = l.kv.Update(c, l.name, []byte(l.holder), e.rev)
		if err != nil {
			return fmt.Errorf("taking over revision %d of the lease: %w", e.rev, err)
		}
		rev = r
		return nil
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
			e, rerr := l.read()
			switch {
			case rerr != nil:
			case !e.free() && e.value == l.holder:
				*rev = e.rev
				sent = failingSince // the earliest it can have been written
				return nil
			default:
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
	kv, err := openLeaseBucket(ctx, p.st.JetStream(), p.cfg.Buffer.LeaseTTL, p.st.Replicas())
	if err != nil {
		return err
	}
	run := newRunID()
	for _, sc := range p.cfg.Sinks {
		if _, err := p.newSinkRunner(sc); err != nil {
			return err
		}
		l := &leasedSink{name: sc.Name, kv: kv, nc: p.st.JetStream().Conn(), ttl: p.cfg.Buffer.LeaseTTL, node: p.node.id,
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

// openLeaseBucket declares the lease bucket. Its handle is for writes (all of them
// compare-and-set); reads go to the stream leader through readLease.
func openLeaseBucket(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: SinkLeaseBucket,
		Description: "Vigil sink leases: the process node that runs each sink", TTL: ttl,
		Storage: jetstream.FileStorage, Replicas: replicas})
	if err != nil {
		return nil, fmt.Errorf("sink lease bucket: %w", err)
	}
	return kv, nil
}

// newRunID tells this run of a node from its earlier ones.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
