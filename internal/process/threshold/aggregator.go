package threshold

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// Buckets of the aggregators' leases (KV, one bucket per rule, as a bucket's TTL is
// its keys' lease time: LeaseBucket + "_" + rule) and snapshots (object store).
const (
	LeaseBucket = "VIGIL_AGG_LEASE"
	StateBucket = "VIGIL_AGG_STATE"
	// AlertDataset is the dataset of alerts.
	AlertDataset = "vigil.alert"
)

// Aggregator is the single active aggregator of one threshold rule across every
// node that runs processing. Each node starts one per rule; the one that holds the
// rule's lease (a key in the LeaseBucket KV, whose TTL is lease_ttl, renewed every
// third of it) consumes the rule's samples from the aggregation stream in order,
// keeps the windows, publishes alerts to the events stream and saves its state with
// the stream sequence it includes to the StateBucket object store every
// snapshot_interval and when it stops. A node that takes the lease over (at start,
// or when the holder stopped or died and its key expired) restores the snapshot and
// replays the samples after its sequence, so the state is the same as if nothing
// had happened; alerts raised again on replay carry the same id and message ID, so
// the stream drops them within its duplicate window and sinks overwrite them after.
//
// Start returns at once; Stop saves the state (when holding the lease), releases the
// lease and returns before ctx ends. Stop is idempotent and safe without Start.
type Aggregator struct {
	r    *rule
	st   *stream.Stream
	log  *slog.Logger
	node string

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	leader  bool
	alerts  uint64
	crashed bool
	stats   Stats
}

// Stats are a rule's counts as its aggregator last saw them (cumulative over the
// rule's life: they are part of the saved state).
type Stats struct {
	// Late counts events older than the watermark (or their group's window), not
	// counted; Evicted counts groups evicted by max_groups.
	Late, Evicted uint64
	// Groups is the number of groups held.
	Groups int
	// Seq is the aggregation stream sequence the state includes.
	Seq uint64
}

// NewAggregators returns an aggregator for each threshold rule of procs.
func NewAggregators(procs []*config.Processor, st *stream.Stream, log *slog.Logger) ([]*Aggregator, error) {
	var out []*Aggregator
	host, _ := os.Hostname()
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	node := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(nonce[:]))
	for _, pc := range procs {
		if pc.Type != "threshold" {
			continue
		}
		c, ok := pc.Settings.(*Config)
		if !ok {
			return nil, errConfigType(pc.Settings)
		}
		r, err := newRule(pc.Name, c)
		if err != nil {
			return nil, err
		}
		out = append(out, &Aggregator{r: r, st: st, log: log.With("threshold", pc.Name), node: node})
	}
	return out, nil
}

// Leader reports whether this node holds the rule's lease now.
func (a *Aggregator) Leader() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leader
}

// Start declares the buckets and starts contending for the lease.
func (a *Aggregator) Start(ctx context.Context) error {
	js := a.st.JetStream()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: LeaseBucket + "_" + a.r.name,
		Description: "Vigil threshold aggregator lease of rule " + a.r.name, TTL: a.r.cfg.LeaseTTL,
		Storage: jetstream.FileStorage, Replicas: a.st.Replicas()})
	if err != nil {
		return fmt.Errorf("threshold %s: lease bucket: %w", a.r.name, err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: StateBucket,
		Description: "Vigil threshold aggregator state, one object per rule", Storage: jetstream.FileStorage,
		Replicas: a.st.Replicas()})
	if err != nil {
		return fmt.Errorf("threshold %s: state bucket: %w", a.r.name, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Go(func() { a.run(runCtx, kv, obj) })
	return nil
}

// Stop stops aggregating, saving the state first if this node leads.
func (a *Aggregator) Stop(ctx context.Context) error {
	if a.cancel == nil {
		return nil
	}
	a.cancel()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("threshold %s: aggregator did not stop before the deadline: %w", a.r.name, ctx.Err())
	}
}

// run contends for the lease until stopped, leading while it holds it.
func (a *Aggregator) run(ctx context.Context, kv jetstream.KeyValue, obj jetstream.ObjectStore) {
	retry := a.r.cfg.LeaseTTL / 4
	for ctx.Err() == nil {
		rev, err := kv.Create(ctx, a.r.name, []byte(a.node))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				a.log.Warn("threshold: lease: cannot reach the lease bucket", "err", err)
			}
			sleep(ctx, retry)
			continue
		}
		a.setLeader(true)
		a.log.Info("threshold: this node aggregates the rule")
		err = a.lead(ctx, kv, obj, rev)
		a.setLeader(false)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("threshold: stopped aggregating", "err", err)
			sleep(ctx, retry)
		}
	}
}

func (a *Aggregator) setLeader(v bool) {
	a.mu.Lock()
	a.leader = v
	a.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

var errLeaseLost = errors.New("lease lost to another node")

// lead restores the state, then consumes samples until ctx ends or the lease is
// lost. On a stop it saves the state and releases the lease.
func (a *Aggregator) lead(ctx context.Context, kv jetstream.KeyValue, obj jetstream.ObjectStore, rev uint64) error {
	st := newState(a.r)
	var seq uint64
	// Lease and state operations outlive ctx (they run when it ends, to save and
	// release) but never hang a stop: each has its own deadline.
	op := func(f func(ctx context.Context) error) error {
		c, cancel := context.WithTimeout(context.Background(), a.r.cfg.LeaseTTL)
		defer cancel()
		return f(c)
	}
	unlock := func() {
		_ = op(func(c context.Context) error { return kv.Delete(c, a.r.name, jetstream.LastRevision(rev)) })
	}
	save := func() error {
		return op(func(c context.Context) error { return a.save(c, kv, obj, &rev, st, seq) })
	}
	if snap, err := a.load(ctx, obj); err != nil {
		unlock()
		return fmt.Errorf("restoring the state: %w", err)
	} else if snap != nil {
		if st.restore(snap) {
			seq = snap.Seq
		} else {
			a.log.Warn("threshold: the saved state is of another rule definition (group_by, window or aggregates changed); starting empty")
			seq = snap.Seq
		}
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.AggSubject(a.r.name)}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if seq > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	}
	cons, err := a.st.JetStream().OrderedConsumer(ctx, stream.AggStream, cc)
	if err != nil {
		unlock()
		return fmt.Errorf("consumer: %w", err)
	}
	renew := time.NewTicker(a.r.cfg.LeaseTTL / 3)
	defer renew.Stop()
	lastSnap, lastSample, lastIdle := time.Now(), time.Now(), time.Now()
	saved := seq
	var smp sample
	var alerts []Alert
	release := func() {
		if seq != saved {
			if err := save(); err != nil {
				a.log.Warn("threshold: saving the state at stop failed; the next holder replays more", "err", err)
			}
		}
		unlock()
	}
	for {
		select {
		case <-ctx.Done():
			if !a.isCrashed() {
				release()
			}
			return nil
		case <-renew.C:
			if err := op(func(c context.Context) error {
				r, err := kv.Update(c, a.r.name, []byte(a.node), rev)
				rev = r
				return err
			}); err != nil {
				return fmt.Errorf("%w: %v", errLeaseLost, err)
			}
		default:
		}
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			// Let another node (or this one, after a pause) take over at once,
			// from the last saved state.
			unlock()
			return fmt.Errorf("fetch: %w", err)
		}
		alerts = alerts[:0]
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if err := wire.ReadAgg(m.Data(), func(b []byte) error {
				if err := decodeSample(b, &smp); err != nil {
					return err
				}
				if len(smp.group) != len(a.r.cfg.GroupBy) || len(smp.nums) != len(a.r.nums) || len(smp.strs) != len(a.r.strs) {
					return nil // from an older definition of the rule
				}
				alerts = st.add(&smp, alerts)
				return nil
			}); err != nil {
				a.log.Warn("threshold: skipping a malformed sample message", "seq", md.Sequence.Stream, "err", err)
			}
			seq = md.Sequence.Stream
		}
		a.mu.Lock()
		a.stats = Stats{Late: st.late, Evicted: st.evicted, Groups: len(st.groups), Seq: seq}
		a.mu.Unlock()
		if n > 0 {
			lastSample = time.Now()
		} else if time.Since(lastSample) > max(a.r.cfg.Lateness, time.Second) && time.Since(lastIdle) >= time.Second {
			alerts = st.idle(time.Now(), alerts)
			lastIdle = time.Now()
		}
		// Alerts are stored before a snapshot can include the samples that raised
		// them: a crash in between raises them again (same IDs) on replay.
		if err := a.publish(ctx, alerts); err != nil {
			if ctx.Err() != nil {
				// Not saved: the next holder replays these samples and raises them again.
				if !a.isCrashed() {
					unlock()
				}
				return nil
			}
			return err
		}
		if seq != saved && time.Since(lastSnap) >= a.r.cfg.SnapshotInterval {
			if err := save(); err != nil {
				if errors.Is(err, errLeaseLost) {
					return err
				}
				a.log.Warn("threshold: saving the state failed; will retry", "err", err)
			} else {
				saved = seq
			}
			lastSnap = time.Now()
		}
	}
}

// load returns the saved state, nil when there is none.
func (a *Aggregator) load(ctx context.Context, obj jetstream.ObjectStore) (*snapshot, error) {
	b, err := obj.GetBytes(ctx, a.r.name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		a.log.Warn("threshold: the saved state is unreadable; starting empty", "err", err)
		return nil, nil
	}
	return &s, nil
}

// save renews the lease (so a node that lost it never overwrites the new holder's
// state), then stores the state.
func (a *Aggregator) save(ctx context.Context, kv jetstream.KeyValue, obj jetstream.ObjectStore, rev *uint64, st *state, seq uint64) error {
	r, err := kv.Update(ctx, a.r.name, []byte(a.node), *rev)
	if err != nil {
		return fmt.Errorf("%w: %v", errLeaseLost, err)
	}
	*rev = r
	b, err := json.Marshal(st.snapshot(seq))
	if err != nil {
		return err
	}
	_, err = obj.Put(ctx, jetstream.ObjectMeta{Name: a.r.name}, bytes.NewReader(b))
	return err
}

// publish stores alerts in the events stream, one batch per alert with the alert's
// id as message ID, retrying until stored or ctx ends.
func (a *Aggregator) publish(ctx context.Context, alerts []Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	var enc event.Encoder
	msgs := make([]wire.Out, 0, len(alerts))
	for i := range alerts {
		e := a.r.alertEvent(&alerts[i])
		doc := enc.Append(nil, e)
		doc = append(doc, '\n')
		msgs = append(msgs, wire.Out{Msg: wire.EventsMsg(wire.Events{Dataset: AlertDataset, Count: 1, Docs: doc}),
			ID: "alert:" + alerts[i].ID()})
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, a.st.PublishTimeout())
		err := wire.PublishAll(pctx, a.st, msgs...)
		cancel()
		if err == nil {
			a.mu.Lock()
			a.alerts += uint64(len(alerts))
			a.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("threshold: publishing alerts failed; retrying", "err", err)
		sleep(ctx, time.Second)
	}
}

// alertEvent builds the alert's ECS event.
func (r *rule) alertEvent(al *Alert) *event.Event {
	e := &event.Event{}
	end := time.Unix(0, al.End).UTC()
	e.Set("@timestamp", event.Time(end))
	e.Set("event.id", event.String(al.ID()))
	e.Set("event.kind", event.String("alert"))
	e.Set("event.dataset", event.String(AlertDataset))
	e.Set("event.severity", event.Int(r.severity))
	e.Set("event.start", event.Time(time.Unix(0, al.Start).UTC()))
	e.Set("event.end", event.Time(end))
	e.Set("rule.name", event.String(r.name))
	e.Set("rule.id", event.String(r.name))
	e.Set("rule.category", event.String("threshold"))
	e.Set("threshold.level", event.String(r.cfg.Level))
	e.Set("threshold.condition", event.String(r.cfg.Condition))
	e.Set("threshold.window.start", event.Time(time.Unix(0, al.Start).UTC()))
	e.Set("threshold.window.end", event.Time(end))
	e.Set("threshold.window.type", event.String(r.cfg.WindowType))
	var desc []string
	for i, f := range r.cfg.GroupBy {
		if !ownField(f) {
			e.Set(f, event.String(al.Group[i]))
		}
		e.Set("threshold.group."+f, event.String(al.Group[i]))
		desc = append(desc, f+"="+al.Group[i])
	}
	var vals []string
	for i, ag := range r.aggs {
		v := al.Values[i]
		if v != v { // NaN has no JSON form
			continue
		}
		e.Set("threshold.values."+ag.name, event.Float(v))
		vals = append(vals, fmt.Sprintf("%s=%g", ag.name, v))
	}
	if len(al.IDs) > 0 {
		e.Set("threshold.event_ids", event.Strings(al.IDs))
	}
	e.Set("message", event.String(fmt.Sprintf("%s: %s (%s) for %s in %s..%s", r.name, r.cfg.Condition,
		strings.Join(vals, ", "), strings.Join(desc, ", "), time.Unix(0, al.Start).UTC().Format(time.RFC3339),
		end.Format(time.RFC3339))))
	return e
}

// Crash stops the aggregator as a killed process would: without saving its state
// or releasing its lease, which another node takes over only when it expires. It is
// for tests of that takeover.
func (a *Aggregator) Crash() {
	a.mu.Lock()
	a.crashed = true
	a.mu.Unlock()
	_ = a.Stop(context.Background())
}

func (a *Aggregator) isCrashed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.crashed
}

// Name returns the rule's name.
func (a *Aggregator) Name() string { return a.r.name }

// Stats returns the rule's counts as this node last saw them.
func (a *Aggregator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Alerts returns how many alerts this node published.
func (a *Aggregator) Alerts() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.alerts
}

// ownField reports a field the alert sets itself, which a group_by field of the
// same name must not overwrite (it stays under threshold.group.*).
func ownField(f string) bool {
	for _, p := range []string{"@timestamp", "event", "rule", "threshold", "message"} {
		if f == p || strings.HasPrefix(f, p+".") {
			return true
		}
	}
	return false
}
