package elasticsearchsink

import (
	"github.com/vigil-sec/vigil/internal/sink/docscan"

	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
)

// Flavours of the bulk API this sink speaks; they differ only in naming and in the
// index templates it installs.
const (
	FlavourElasticsearch = "elasticsearch"
	FlavourOpenSearch    = "opensearch"
)

// errStopped is the outcome of batches still unresolved when the sink stops: they
// are redelivered by the stream.
var errStopped = errors.New("elasticsearch: sink stopped before delivery; the batch will be redelivered")

// stopGrace bounds Stop when its context has no deadline, so a dead cluster cannot
// hold a shutdown forever (unresolved batches are redelivered later).
const stopGrace = 10 * time.Second

// Sink delivers event batches with the bulk API.
//
// Flow: Consume frames each document of a batch as an action line plus the
// document, appending to the pending request; a full request (batch.max_bytes or
// max_events), or one older than max_wait (the flusher), is handed to a delivery
// goroutine, at most max_in_flight at once, and Consume blocks while all are busy.
// A batch may span requests; its tracker counts its unresolved documents and calls
// Done once, when the last one is delivered or dead-lettered (nil) or given up at
// stop or on a dead-letter failure (an error: redelivered, and the _id makes the
// resend overwrite).
type Sink struct {
	cfg      Config
	flavour  string
	name     string
	log      *slog.Logger
	counters *component.Counters
	dead     func(ctx context.Context, letters ...component.Letter) error

	index  *indexTemplate
	paths  []string   // looked up in each document: event.id, [@timestamp], index fields
	idPath int        // = 0
	tsPath int        // -1 when the index uses no time
	fPaths []int      // position in paths of each index field
	urls   []*url.URL // the _bulk endpoints
	bases  []*url.URL // the configured URLs
	auth   string     // Authorization header value
	client *http.Client

	gzips     sync.Pool     // *gzip.Writer, reused across requests
	next      atomic.Uint32 // the URL to try first (failover moves it on)
	sem       chan struct{} // max_in_flight slots
	templates chan struct{} // closed once templates are installed (or not wanted)

	// sendCtx is the context of every request and backoff; cancelled when Stop's
	// deadline passes, which makes deliveries give up their remaining items.
	sendCtx    context.Context
	cancelSend context.CancelFunc

	mu       sync.Mutex
	pending  *job
	stopped  bool
	started  bool
	deliver  sync.WaitGroup // delivery goroutines and the template installer
	consumes sync.WaitGroup // Consume calls under way, which may still dispatch
	flusher  sync.WaitGroup
	stopTick chan struct{}
	vals     [][]byte // lookup results, under mu
	fvals    [][]byte // the index fields' values, under mu
}

var _ component.Sink = (*Sink)(nil)

// New returns an elasticsearch sink; flavour is FlavourElasticsearch or
// FlavourOpenSearch (the config type).
func New(cfg *Config, flavour string, deps component.SinkDeps) (*Sink, error) {
	c := *cfg
	if err := c.Validate(); err != nil {
		return nil, err
	}
	idx, err := parseIndex(c.Index)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	s := &Sink{cfg: c, flavour: flavour, name: deps.Name, log: deps.Log, counters: deps.Metrics.For("sink", deps.Name),
		dead: deps.DeadLetter, index: idx, tsPath: -1}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.paths = []string{"event.id"}
	if idx.hasTime {
		s.tsPath = len(s.paths)
		s.paths = append(s.paths, "@timestamp")
	}
	for _, f := range idx.fields {
		pos := -1
		for i, p := range s.paths {
			if p == f {
				pos = i
			}
		}
		if pos < 0 {
			pos = len(s.paths)
			s.paths = append(s.paths, f)
		}
		s.fPaths = append(s.fPaths, pos)
	}
	s.vals = make([][]byte, len(s.paths))
	s.fvals = make([][]byte, len(s.fPaths))
	for _, raw := range c.URLs {
		u, err := bulkURL(raw)
		if err != nil {
			return nil, err
		}
		s.urls = append(s.urls, u)
		base, _ := url.Parse(raw)
		s.bases = append(s.bases, base)
	}
	switch {
	case c.Auth.APIKey != "":
		s.auth = "ApiKey " + c.Auth.APIKey
	case c.Auth.BearerToken != "":
		s.auth = "Bearer " + c.Auth.BearerToken
	case c.Auth.Username != "":
		s.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Auth.Username+":"+c.Auth.Password))
	}
	return s, nil
}

// Describe implements component.Sink.
func (s *Sink) Describe() string {
	u := s.bases[0]
	more := ""
	if len(s.urls) > 1 {
		more = fmt.Sprintf(" (+%d)", len(s.urls)-1)
	}
	return fmt.Sprintf("%s to %s%s index %s", s.flavour, u.Redacted(), more, s.cfg.Index)
}

// Start implements component.Sink: it builds the HTTP client and, when asked,
// installs the index templates in the background (deliveries wait for them) so
// that a cluster that is down at start does not stop the pipeline from starting.
func (s *Sink) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2 * s.cfg.MaxInFlight
	tr.ResponseHeaderTimeout = s.cfg.RequestTimeout
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if s.cfg.TLS.Enabled() {
		tc, err := s.cfg.TLS.TLSConfig()
		if err != nil {
			return err
		}
		tr.TLSClientConfig = tc
	}
	// The body is compressed by us; the transport must not ask for compressed
	// responses it would then have to undo on every bulk answer.
	tr.DisableCompression = true
	s.client = &http.Client{Transport: tr, Timeout: s.cfg.RequestTimeout,
		// Redirects would resend a bulk body to somewhere not configured.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.sem = make(chan struct{}, s.cfg.MaxInFlight)
	s.sendCtx, s.cancelSend = context.WithCancel(context.Background())
	s.templates = make(chan struct{})
	if s.cfg.InstallTemplates {
		s.deliver.Go(s.installTemplates)
	} else {
		close(s.templates)
	}
	s.stopTick = make(chan struct{})
	s.flusher.Go(s.flushLoop)
	s.started = true
	return nil
}

// tracker counts the unresolved documents of one batch.
type tracker struct {
	b    *component.Batch
	mu   sync.Mutex
	left int
	err  error
}

// resolve marks n documents resolved; err non-nil means they were not delivered
// and the batch must come again. The last one calls Done.
func (t *tracker) resolve(n int, err error) {
	t.mu.Lock()
	t.left -= n
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

// item is one document of a request: body[start:end] is its action line and
// document, the document at body[doc:end-1]; body[id0:id1] its event.id token.
type item struct {
	start, doc, end int32
	id0, id1        int32
	tr              *tracker
}

// job is one bulk request's worth of items.
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
		return errors.New("elasticsearch: sink is not running")
	}
	// One extra count holds the batch open while its documents are being added, so
	// a request sent before the last one is framed cannot complete it early.
	s.consumes.Add(1)
	defer s.consumes.Done()
	tr := &tracker{b: b, left: 1}
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

// addLocked frames doc into the pending job and returns a job that is now full.
func (s *Sink) addLocked(tr *tracker, doc []byte, b *component.Batch) *job {
	var out *job
	p := s.pending
	size := len(doc) + 160
	if p != nil && len(p.items) > 0 && (len(p.body)+size > int(s.cfg.Batch.MaxBytes)) {
		out, p, s.pending = p, nil, nil
	}
	if p == nil {
		capacity := min(int(s.cfg.Batch.MaxBytes)+int(s.cfg.Batch.MaxBytes)/8, 64<<20)
		p = &job{body: make([]byte, 0, capacity), first: time.Now()}
		s.pending = p
	}
	docscan.Lookup(doc, s.paths, s.vals)
	it := item{start: int32(len(p.body)), tr: tr}
	p.body = append(p.body, `{"`...)
	p.body = append(p.body, s.cfg.OpType...)
	p.body = append(p.body, `":{"_index":"`...)
	ts := b.Time
	if s.tsPath >= 0 {
		if t, ok := parseTimestamp(s.vals[s.tsPath]); ok {
			ts = t
		}
	}
	if len(s.fPaths) > 0 {
		for i, pos := range s.fPaths {
			s.fvals[i] = s.vals[pos]
		}
		p.body = s.index.render(p.body, s.fvals, ts, b.Dataset)
	} else {
		p.body = s.index.render(p.body, nil, ts, b.Dataset)
	}
	p.body = append(p.body, '"')
	if id := s.vals[0]; len(id) > 2 && id[0] == '"' {
		// The token is copied as written: already valid JSON.
		p.body = append(p.body, `,"_id":`...)
		it.id0 = int32(len(p.body))
		p.body = append(p.body, id...)
		it.id1 = int32(len(p.body))
	}
	p.body = append(p.body, "}}\n"...)
	it.doc = int32(len(p.body))
	p.body = append(p.body, doc...)
	p.body = append(p.body, '\n')
	it.end = int32(len(p.body))
	p.items = append(p.items, it)
	tr.mu.Lock()
	tr.left++
	tr.mu.Unlock()
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
		s.run(j)
	})
}

// giveUp resolves items with err (their batches are redelivered).
func (s *Sink) giveUp(items []item, err error) {
	for _, it := range items {
		it.tr.resolve(1, err)
	}
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

// Stop implements component.Sink: the pending request is sent, deliveries under way
// finish (retrying) until ctx's deadline (or stopGrace), and whatever is still
// unresolved then is handed back for redelivery.
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
	stopWatch := context.AfterFunc(ctx, s.cancelSend)
	defer stopWatch()
	close(s.stopTick)
	s.flusher.Wait()
	s.consumes.Wait()
	if p != nil && len(p.items) > 0 {
		s.dispatch(s.sendCtx, p)
	}
	s.deliver.Wait()
	s.cancelSend()
	s.client.CloseIdleConnections()
	return nil
}
