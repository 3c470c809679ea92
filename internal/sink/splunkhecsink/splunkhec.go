package splunkhecsink

import (
	"context"
	"crypto/rand"
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
	"github.com/vigil-sec/vigil/internal/sink/deliver"
	"github.com/vigil-sec/vigil/internal/sink/docscan"
)

// Paths looked up in each document, in this order.
const (
	pathTimestamp = iota
	pathDataset
	pathHost
)

var scanPaths = []string{"@timestamp", "event.dataset", "host.name"}

// Sink delivers event batches to Splunk's HTTP Event Collector.
//
// The delivery engine (deliver.Engine) batches, bounds, retries and settles; the
// sink supplies the HEC protocol: frame frames each document as an HEC event
// object, and send posts a request and classifies Splunk's answer. A batch is done
// once every one of its events is delivered (acknowledged by Splunk when
// indexer_acknowledgement is on) or dead-lettered, or given up at stop or on a
// dead-letter failure (the stream redelivers the batch).
//
// With indexer acknowledgement, send takes an ack.max_pending slot before each
// request and hands an accepted request with its ackId to the acker, which polls
// the ack endpoint every ack.poll_interval, confirms the events of acknowledged
// requests to the engine, and has those whose ack did not come within ack.timeout
// sent again.
type Sink struct {
	cfg      Config
	log      *slog.Logger
	counters *component.Counters
	engine   *deliver.Engine

	eventURL string
	ackURL   string
	base     string // for Describe
	auth     string // Authorization header value; never logged
	channel  string // X-Splunk-Request-Channel, random per sink instance
	client   *http.Client
	gzips    sync.Pool // *gzip.Writer, reused across requests

	pendSem    chan struct{} // ack.max_pending slots
	acks       *acker
	ackMissing atomic.Bool
	bg         sync.WaitGroup // the acker

	metas map[string]*meta // resolved metadata by dataset, used by frame only
	vals  [][]byte         // lookup results, used by frame only
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
	s := &Sink{cfg: c, log: deps.Log, counters: deps.Metrics.For("sink", deps.Name),
		auth: "Splunk " + c.Token, channel: newChannel(),
		eventURL: base.JoinPath("services", "collector", "event").String(),
		base:     base.Redacted(),
		metas:    map[string]*meta{}, vals: make([][]byte, len(scanPaths))}
	ack := base.JoinPath("services", "collector", "ack")
	ack.RawQuery = "channel=" + s.channel
	s.ackURL = ack.String()
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// About 256 bytes frame an event: time, host, source, sourcetype and index.
	s.engine = deliver.New(deliver.Config{Name: "splunk_hec", Sink: deps.Name,
		MaxBytes: int(c.Batch.MaxBytes), MaxEvents: c.Batch.MaxEvents, MaxWait: c.Batch.MaxWait, Overhead: 256,
		MaxInFlight: c.MaxInFlight, Backoff: deliver.Backoff(c.Retry),
		Log: s.log, Counters: s.counters, DeadLetter: deps.DeadLetter},
		deliver.Protocol{Frame: s.frame, Send: s.send})
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
	return s.engine.Start(func(ctx context.Context) error {
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
		s.pendSem = make(chan struct{}, s.cfg.Ack.MaxPending)
		if s.cfg.IndexerAcknowledgement {
			s.acks = &acker{s: s, ctx: ctx, pending: map[uint64]*pendingAck{}}
			s.bg.Go(s.acks.loop)
		}
		return nil
	})
}

// Consume implements component.Sink.
func (s *Sink) Consume(ctx context.Context, b *component.Batch) error {
	return s.engine.Consume(ctx, b)
}

// metaFor returns the metadata of a dataset, resolving and caching it. Used by
// frame only.
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

// frame is the delivery engine's Frame: doc as an HEC event object.
func (s *Sink) frame(body, doc []byte, b *component.Batch) ([]byte, int) {
	docscan.Lookup(doc, scanPaths, s.vals)
	dataset := []byte(b.Dataset)
	if v, ok := docscan.BytesValue(s.vals[pathDataset]); ok && len(v) > 0 {
		dataset = v
	}
	m := s.metaFor(dataset)
	body = append(body, `{"time":`...)
	var ok bool
	if body, ok = appendEpoch(body, s.vals[pathTimestamp]); !ok {
		// No usable @timestamp: the stream time is stable across resends, unlike
		// the time Splunk would pick.
		body = appendTime(body, b.Time)
	}
	switch {
	case m.host != nil:
		body = append(body, m.host...)
	case len(s.vals[pathHost]) > 2 && s.vals[pathHost][0] == '"':
		// The token is copied as written: already a valid JSON string.
		body = append(body, `,"host":`...)
		body = append(body, s.vals[pathHost]...)
	}
	body = append(body, m.fixed...)
	body = append(body, `,"event":`...)
	at := len(body)
	body = append(body, doc...)
	body = append(body, "}\n"...)
	return body, at
}

// Stop implements component.Sink: the pending request is sent, deliveries and
// acks under way finish (retrying) until ctx's deadline (or 10s without one), and
// whatever is still unresolved then is handed back for redelivery.
func (s *Sink) Stop(ctx context.Context) error {
	s.engine.Stop(ctx, func() {
		s.bg.Wait() // the acker gives up what it still holds
		s.client.CloseIdleConnections()
	})
	return nil
}
