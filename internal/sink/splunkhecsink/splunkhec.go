package splunkhecsink

import (
	"github.com/vigil-sec/vigil/internal/sink/docscan"

	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
)

// errStopped is the outcome of batches still unresolved when the sink stops: they
// are redelivered by the stream.
var errStopped = errors.New("splunk_hec: sink stopped before Splunk confirmed delivery; the batch will be redelivered")

// stopGrace bounds Stop when its context has no deadline, so a dead Splunk cannot
// hold a shutdown forever (unresolved batches are redelivered later).
const stopGrace = 10 * time.Second

// Paths looked up in each document, in this order.
const (
	pathTimestamp = iota
	pathDataset
	pathHost
)

var scanPaths = []string{"@timestamp", "event.dataset", "host.name"}

// Sink delivers event batches to Splunk's HTTP Event Collector.
//
// Flow: Consume frames each document of a batch as an HEC event object appended to
// the pending request; a full request (batch.max_bytes or max_events), or one older
// than max_wait (the flusher), is handed to a delivery goroutine, at most
// max_in_flight at once, and Consume blocks while all are busy. A batch may span
// requests; its tracker counts its unresolved events and calls Done once, when the
// last one is delivered (acknowledged by Splunk when indexer_acknowledgement is on)
// or dead-lettered (nil), or given up at stop or on a dead-letter failure (an
// error: the stream redelivers the batch).
//
// With indexer acknowledgement, a delivery goroutine takes an ack.max_pending slot
// before each request and hands an accepted request with its ackId to the acker,
// which polls the ack endpoint every ack.poll_interval, resolves the events of
// acknowledged requests, and sends again those whose ack did not come within
// ack.timeout.
type Sink struct {
	cfg      Config
	name     string
	log      *slog.Logger
	counters *component.Counters
	dead     func(ctx context.Context, letters ...component.Letter) error

	eventURL string
	ackURL   string
	base     string // for Describe
	auth     string // Authorization header value; never logged
	channel  string // X-Splunk-Request-Channel, random per sink instance
	client   *http.Client
	gzips    sync.Pool // *gzip.Writer, reused across requests

	sem     chan struct{} // max_in_flight slots
	pendSem chan struct{} // ack.max_pending slots
	acks    *acker

	// sendCtx is the context of every request and backoff; cancelled when Stop's
	// deadline passes (or Stop finishes), which makes deliveries give up.
	sendCtx    context.Context
	cancelSend context.CancelFunc

	// outstanding counts framed events not yet resolved; idle is signalled when it
	// drops to zero, which Stop waits for.
	outstanding atomic.Int64
	idle        chan struct{}
	ackMissing  atomic.Bool

	mu       sync.Mutex
	pending  *job
	stopped  bool
	started  bool
	metas    map[string]*meta // resolved metadata by dataset, under mu
	vals     [][]byte         // lookup results, under mu
	deliver  sync.WaitGroup   // delivery goroutines
	consumes sync.WaitGroup   // Consume calls under way, which may still dispatch
	bg       sync.WaitGroup   // flusher and acker
	stopTick chan struct{}
}

var _ component.Sink = (*Sink)(nil)

// meta is one dataset's metadata as JSON fragments ready to append.
type meta struct {
	host  []byte // `,"host":"..."`, or nil to use the document's host.name
	fixed []byte // `,"source":...,"sourcetype":...[,"index":...]`
}

// New returns a splunk_hec sink.
func New(cfg *Config, deps component.SinkDeps) (*Sink, error) {
	c := *cfg
	if err := c.Validate(); err != nil {
		return nil, err
	}
	base, err := baseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	s := &Sink{cfg: c, name: deps.Name, log: deps.Log, counters: deps.Metrics.For("sink", deps.Name),
		dead: deps.DeadLetter, auth: "Splunk " + c.Token, channel: newChannel(),
		eventURL: base.JoinPath("services", "collector", "event").String(),
		base:     base.Redacted(),
		metas:    map[string]*meta{}, vals: make([][]byte, len(scanPaths)), idle: make(chan struct{}, 1)}
	ack := base.JoinPath("services", "collector", "ack")
	ack.RawQuery = "channel=" + s.channel
	s.ackURL = ack.String()
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// newChannel returns a random (version 4) UUID: Splunk keys acks by channel, so
// each sink instance polls only its own.
func newChannel() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Channel is the sink's HEC request channel.
func (s *Sink) Channel() string { return s.channel }

// Describe implements component.Sink.
func (s *Sink) Describe() string {
	mode := "without indexer acknowledgement"
	if s.cfg.IndexerAcknowledgement {
		mode = "with indexer acknowledgement"
	}
	return "splunk_hec to " + s.base + " " + mode
}

// Start implements component.Sink.
func (s *Sink) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2*s.cfg.MaxInFlight + 1
	tr.ResponseHeaderTimeout = s.cfg.RequestTimeout
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if s.cfg.TLS.Enabled() {
		tc, err := s.cfg.TLS.TLSConfig()
		if err != nil {
			return err
		}
		tr.TLSClientConfig = tc
	}
	tr.DisableCompression = true
	s.client = &http.Client{Transport: tr, Timeout: s.cfg.RequestTimeout,
		// A redirect would resend the token and events somewhere not configured.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.sem = make(chan struct{}, s.cfg.MaxInFlight)
	s.pendSem = make(chan struct{}, s.cfg.Ack.MaxPending)
	s.sendCtx, s.cancelSend = context.WithCancel(context.Background())
	s.stopTick = make(chan struct{})
	s.bg.Go(s.flushLoop)
	if s.cfg.IndexerAcknowledgement {
		s.acks = &acker{s: s, pending: map[uint64]*pendingAck{}}
		s.bg.Go(s.acks.loop)
	}
	s.started = true
	return nil
}

// tracker counts the unresolved events of one batch.
type tracker struct {
	s    *Sink
	b    *component.Batch
	mu   sync.Mutex
	left int
	err  error
}

// resolve marks n events resolved; err non-nil means they were not delivered and
// the batch must come again. The last one calls Done.
func (t *tracker) resolve(n int, err error) {
	t.mu.Lock()
	t.left -= n
	if t.left < 0 {
		// A bug: an event resolved twice. Counted so tests and operators see it;
		// Done has been called already and is not called again.
		t.mu.Unlock()
		t.s.counters.Error("internal_double_resolve")
		return
	}
	if err != nil && t.err == nil {
		t.err = err
	}
	done := t.left == 0
	outcome := t.err
	t.mu.Unlock()
	if done {
		t.b.Done(outcome)
	}
}

// item is one event of a request: body[start:end] is its framed event object and
// the newline after it, the document at body[doc:docEnd].
type item struct {
	start, doc, docEnd, end int32
	tr                      *tracker
}

// job is one request's worth of items.
type job struct {
	body  []byte
	items []item
	first time.Time
}

// Consume implements component.Sink.
func (s *Sink) Consume(ctx context.Context, b *component.Batch) error {
	s.mu.Lock()
	if s.stopped || !s.started {
		s.mu.Unlock()
		return errors.New("splunk_hec: sink is not running")
	}
	s.consumes.Add(1)
	defer s.consumes.Done()
	// One extra count holds the batch open while its events are being framed, so a
	// request delivered before the last one is framed cannot complete it early.
	tr := &tracker{s: s, b: b, left: 1}
	var full []*job
	_ = event.EachLine(b.Docs, func(doc []byte) error {
		if j := s.addLocked(tr, doc, b); j != nil {
			full = append(full, j)
		}
		return nil
	})
	s.mu.Unlock()
	for _, j := range full {
		s.dispatch(ctx, j)
	}
	tr.resolve(1, nil)
	return nil
}

// metaFor returns the metadata of a dataset, resolving and caching it. Under mu.
func (s *Sink) metaFor(dataset []byte) *meta {
	if m, ok := s.metas[string(dataset)]; ok {
		return m
	}
	ds := string(dataset)
	md := s.cfg.resolve(ds)
	m := &meta{}
	if md.Host != "" {
		m.host = event.AppendString([]byte(`,"host":`), md.Host)
	}
	m.fixed = append(m.fixed, `,"source":`...)
	m.fixed = event.AppendString(m.fixed, md.Source)
	m.fixed = append(m.fixed, `,"sourcetype":`...)
	m.fixed = event.AppendString(m.fixed, md.Sourcetype)
	if md.Index != "" {
		m.fixed = append(m.fixed, `,"index":`...)
		m.fixed = event.AppendString(m.fixed, md.Index)
	}
	// Bounded: a sink sees few datasets, but a document may name any; stop caching
	// rather than grow without limit.
	if len(s.metas) < 4096 {
		s.metas[ds] = m
	}
	return m
}

// resolve merges the metadata of a dataset: the most specific matching key (an
// exact name, else the longest matching glob), then "default", then the built-in
// defaults, field by field.
func (c *Config) resolve(dataset string) Metadata {
	var out Metadata
	merge := func(m Metadata) {
		if out.Sourcetype == "" {
			out.Sourcetype = m.Sourcetype
		}
		if out.Index == "" {
			out.Index = m.Index
		}
		if out.Source == "" {
			out.Source = m.Source
		}
		if out.Host == "" {
			out.Host = m.Host
		}
	}
	if m, ok := c.Datasets[dataset]; ok && dataset != "default" {
		merge(m)
	} else {
		keys := make([]string, 0, len(c.Datasets))
		for k := range c.Datasets {
			if k != "default" {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool {
			if len(keys[i]) != len(keys[j]) {
				return len(keys[i]) > len(keys[j])
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			if ok, _ := path.Match(k, dataset); ok {
				merge(c.Datasets[k])
				break
			}
		}
	}
	merge(c.Datasets["default"])
	merge(Metadata{Sourcetype: DefaultSourcetype, Source: "vigil:" + dataset})
	return out
}

// addLocked frames doc into the pending job and returns a job that is now full.
func (s *Sink) addLocked(tr *tracker, doc []byte, b *component.Batch) *job {
	var out *job
	p := s.pending
	size := len(doc) + 256
	if p != nil && len(p.items) > 0 && len(p.body)+size > int(s.cfg.Batch.MaxBytes) {
		out, p, s.pending = p, nil, nil
	}
	if p == nil {
		capacity := min(int(s.cfg.Batch.MaxBytes)+int(s.cfg.Batch.MaxBytes)/8, 64<<20)
		p = &job{body: make([]byte, 0, capacity), first: time.Now()}
		s.pending = p
	}
	docscan.Lookup(doc, scanPaths, s.vals)
	dataset := []byte(b.Dataset)
	if v, ok := docscan.BytesValue(s.vals[pathDataset]); ok && len(v) > 0 {
		dataset = v
	}
	m := s.metaFor(dataset)
	it := item{start: int32(len(p.body)), tr: tr}
	p.body = append(p.body, `{"time":`...)
	var ok bool
	if p.body, ok = appendEpoch(p.body, s.vals[pathTimestamp]); !ok {
		// No usable @timestamp: the stream time is stable across resends, unlike
		// the time Splunk would pick.
		p.body = appendTime(p.body, b.Time)
	}
	switch {
	case m.host != nil:
		p.body = append(p.body, m.host...)
	case len(s.vals[pathHost]) > 2 && s.vals[pathHost][0] == '"':
		// The token is copied as written: already a valid JSON string.
		p.body = append(p.body, `,"host":`...)
		p.body = append(p.body, s.vals[pathHost]...)
	}
	p.body = append(p.body, m.fixed...)
	p.body = append(p.body, `,"event":`...)
	it.doc = int32(len(p.body))
	p.body = append(p.body, doc...)
	it.docEnd = int32(len(p.body))
	p.body = append(p.body, "}\n"...)
	it.end = int32(len(p.body))
	p.items = append(p.items, it)
	tr.mu.Lock()
	tr.left++
	tr.mu.Unlock()
	s.outstanding.Add(1)
	if out == nil && (len(p.items) >= s.cfg.Batch.MaxEvents || len(p.body) >= int(s.cfg.Batch.MaxBytes)) {
		out, s.pending = p, nil
	}
	return out
}

// dispatch hands a full job to a delivery goroutine, waiting for a free slot.
func (s *Sink) dispatch(ctx context.Context, j *job) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		s.giveUp(j.items, errStopped)
		return
	case <-s.sendCtx.Done():
		s.giveUp(j.items, errStopped)
		return
	}
	s.deliver.Go(func() {
		defer func() { <-s.sem }()
		s.run(j.body, [][]item{j.items}, true)
	})
}

// resend sends items of body again in a new delivery goroutine (a lost ack).
func (s *Sink) resend(body []byte, items []item) {
	s.deliver.Go(func() {
		select {
		case s.sem <- struct{}{}:
		case <-s.sendCtx.Done():
			s.giveUp(items, errStopped)
			return
		}
		defer func() { <-s.sem }()
		s.run(body, [][]item{items}, false)
	})
}

// flushLoop sends a pending request once it is max_wait old.
func (s *Sink) flushLoop() {
	t := time.NewTicker(max(s.cfg.Batch.MaxWait/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stopTick:
			return
		case <-t.C:
		}
		s.mu.Lock()
		var j *job
		if p := s.pending; p != nil && len(p.items) > 0 && time.Since(p.first) >= s.cfg.Batch.MaxWait {
			j, s.pending = p, nil
		}
		s.mu.Unlock()
		if j != nil {
			s.dispatch(s.sendCtx, j)
		}
	}
}

// settled counts n events resolved, signalling Stop when none are left.
func (s *Sink) settled(n int) {
	if s.outstanding.Add(int64(-n)) == 0 {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// resolveAll resolves items, once per run of the same batch.
func (s *Sink) resolveAll(items []item, err error) {
	for i := 0; i < len(items); {
		k := i + 1
		for k < len(items) && items[k].tr == items[i].tr {
			k++
		}
		items[i].tr.resolve(k-i, err)
		i = k
	}
	s.settled(len(items))
}

// giveUp resolves items with err (their batches are redelivered).
func (s *Sink) giveUp(items []item, err error) { s.resolveAll(items, err) }

// Stop implements component.Sink: the pending request is sent, deliveries and
// acks under way finish (retrying) until ctx's deadline (or stopGrace), and
// whatever is still unresolved then is handed back for redelivery.
func (s *Sink) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	started := s.started
	p := s.pending
	s.pending = nil
	s.mu.Unlock()
	if !started {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, stopGrace)
		defer cancel()
	}
	close(s.stopTick)
	s.consumes.Wait()
	if p != nil && len(p.items) > 0 {
		s.dispatch(ctx, p)
	}
	// Wait for every framed event to be resolved: delivered, acknowledged,
	// dead-lettered, or given up once ctx is done.
	var unconfirmed int64
	for s.outstanding.Load() > 0 {
		select {
		case <-s.idle:
			continue
		case <-ctx.Done():
		}
		unconfirmed = s.outstanding.Load()
		break
	}
	s.cancelSend()
	s.bg.Wait() // the acker gives up what it still holds
	s.deliver.Wait()
	s.client.CloseIdleConnections()
	if unconfirmed > 0 {
		s.log.Warn("splunk_hec: stopped before Splunk confirmed every event; their batches will be redelivered",
			"events", unconfirmed)
	}
	return nil
}
