package elasticsearchsink

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/deliver"
	"github.com/vigil-sec/vigil/internal/sink/docscan"
)

// Flavours of the bulk API this sink speaks; they differ only in naming and in the
// index templates it installs.
const (
	FlavourElasticsearch = "elasticsearch"
	FlavourOpenSearch    = "opensearch"
)

// Sink delivers event batches with the bulk API.
//
// The delivery engine (deliver.Engine) batches, bounds, retries and settles; the
// sink supplies the bulk protocol: frame frames each document as an action line
// plus the document, and send posts a request and reads the per-item outcomes.
// Items the cluster throttled or failed are sent again with backoff, items it
// rejected for good are dead-lettered, and a batch is done once every one of its
// documents is; a batch given up at stop or on a dead-letter failure is
// redelivered, and the _id makes the resend overwrite.
type Sink struct {
	cfg      Config
	flavour  string
	log      *slog.Logger
	counters *component.Counters
	engine   *deliver.Engine

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
	templates chan struct{} // closed once templates are installed (or not wanted)

	vals  [][]byte // lookup results, used by frame only
	fvals [][]byte // the index fields' values, used by frame only
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
	s := &Sink{cfg: c, flavour: flavour, log: deps.Log, counters: deps.Metrics.For("sink", deps.Name),
		index: idx, tsPath: -1}
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
	// About 160 bytes frame a document: the action line, index name and _id.
	s.engine = deliver.New(deliver.Config{Name: "elasticsearch", Sink: deps.Name,
		MaxBytes: int(c.Batch.MaxBytes), MaxEvents: c.Batch.MaxEvents, MaxWait: c.Batch.MaxWait, Overhead: 160,
		MaxInFlight: c.MaxInFlight, Backoff: deliver.Backoff(c.Retry),
		Log: s.log, Counters: s.counters, DeadLetter: deps.DeadLetter},
		deliver.Protocol{Frame: s.frame, Send: s.send})
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
	return s.engine.Start(func(context.Context) error {
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
		s.templates = make(chan struct{})
		if s.cfg.InstallTemplates {
			s.engine.Go(s.installTemplates)
		} else {
			close(s.templates)
		}
		return nil
	})
}

// Consume implements component.Sink.
func (s *Sink) Consume(ctx context.Context, b *component.Batch) error {
	return s.engine.Consume(ctx, b)
}

// frame is the delivery engine's Frame: doc as a bulk action line plus the
// document.
func (s *Sink) frame(body, doc []byte, b *component.Batch) ([]byte, int) {
	docscan.Lookup(doc, s.paths, s.vals)
	body = append(body, `{"`...)
	body = append(body, s.cfg.OpType...)
	body = append(body, `":{"_index":"`...)
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
		body = s.index.render(body, s.fvals, ts, b.Dataset)
	} else {
		body = s.index.render(body, nil, ts, b.Dataset)
	}
	body = append(body, '"')
	if id := s.vals[0]; len(id) > 2 && id[0] == '"' {
		// The token is copied as written: already valid JSON.
		body = append(body, `,"_id":`...)
		body = append(body, id...)
	}
	body = append(body, "}}\n"...)
	at := len(body)
	body = append(body, doc...)
	body = append(body, '\n')
	return body, at
}

// Stop implements component.Sink: the pending request is sent, deliveries under way
// finish (retrying) until ctx's deadline (or 10s without one), and whatever is
// still unresolved then is handed back for redelivery.
func (s *Sink) Stop(ctx context.Context) error {
	s.engine.Stop(ctx, func() { s.client.CloseIdleConnections() })
	return nil
}
