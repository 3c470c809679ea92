package component

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the counters every component reports, labelled by component kind
// ("source", "processing", "sink") and name. One Metrics belongs to one pipeline and
// is registered on that pipeline's registry: there is no global state.
type Metrics struct {
	ReceivedEvents *prometheus.CounterVec
	ReceivedBytes  *prometheus.CounterVec
	SentEvents     *prometheus.CounterVec
	SentBytes      *prometheus.CounterVec
	Errors         *prometheus.CounterVec // labels: kind, component, reason
	DeadLettered   *prometheus.CounterVec // labels: kind, component, stage
	Discarded      *prometheus.CounterVec // labels: kind, component, reason
	Requests       *prometheus.CounterVec // labels: kind, component, code
	Connections    *prometheus.GaugeVec
	Retries        *prometheus.CounterVec
	// Polls, Pages and CursorLag are the pull sources' (poll): runs by outcome,
	// pages fetched, and how far the persisted cursor is behind the clock.
	Polls     *prometheus.CounterVec // labels: kind, component, outcome
	Pages     *prometheus.CounterVec
	CursorLag *prometheus.GaugeVec

	// File sources (labels: kind, component, and path or how).
	FilesWatched    *prometheus.GaugeVec
	FileBytesBehind *prometheus.GaugeVec   // labels: kind, component, path
	FileLinesRead   *prometheus.CounterVec // labels: kind, component
	FileRotations   *prometheus.CounterVec // labels: kind, component, how
	// MillisBehindLatest is, per shard of a streaming pull source (kinesis), how far
	// the last read is behind the shard's tip, in milliseconds.
	MillisBehindLatest *prometheus.GaugeVec // labels: kind, component, shard
}

// NewMetrics creates the counters and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "vigil", Name: name, Help: help},
			append([]string{"kind", "component"}, labels...))
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		ReceivedEvents: cv("received_events_total", "Events or records a component took in."),
		ReceivedBytes:  cv("received_bytes_total", "Bytes a component took in."),
		SentEvents:     cv("sent_events_total", "Events or records a component passed on (stored, published or delivered)."),
		SentBytes:      cv("sent_bytes_total", "Bytes a component passed on."),
		Errors:         cv("errors_total", "Failures by reason; retryable ones are retried, not dropped.", "reason"),
		DeadLettered:   cv("dead_lettered_total", "Records or events sent to the dead-letter stream.", "stage"),
		Discarded:      cv("discarded_total", "Records deliberately not turned into events (skips, drops), by reason.", "reason"),
		Requests:       cv("requests_total", "Requests answered, by status code.", "code"),
		Retries:        cv("retries_total", "Retried deliveries."),
		Polls:          cv("polls_total", "Poll runs of a pull source, by outcome (ok, error, page_cap).", "outcome"),
		Pages:          cv("pages_total", "Pages a pull source fetched and stored."),
	}
	m.CursorLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "vigil", Name: "cursor_lag_seconds",
		Help: "Now minus the time of a pull source's persisted cursor."}, []string{"kind", "component"})
	reg.MustRegister(m.CursorLag)
	m.MillisBehindLatest = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "vigil", Name: "millis_behind_latest",
		Help: "How far a streaming pull source's last read of a shard is behind the shard's tip, in milliseconds."},
		[]string{"kind", "component", "shard"})
	reg.MustRegister(m.MillisBehindLatest)
	m.Connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "vigil", Name: "open_connections", Help: "Open client connections."},
		[]string{"kind", "component"})
	reg.MustRegister(m.Connections)
	gv := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "vigil", Name: name, Help: help},
			append([]string{"kind", "component"}, labels...))
		reg.MustRegister(g)
		return g
	}
	m.FilesWatched = gv("files_watched", "Files a file source has open and follows.")
	m.FileBytesBehind = gv("file_bytes_behind", "Bytes between a followed file's checkpoint and its end.", "path")
	m.FileLinesRead = cv("file_lines_read_total", "Lines (or multiline records) a file source read.")
	m.FileRotations = cv("file_rotations_total", "Rotations a file source saw, by how: rename, truncate, copy.", "how")
	return m
}

// For returns the counters of one component.
func (m *Metrics) For(kind, name string) *Counters {
	return &Counters{m: m, kind: kind, name: name,
		receivedEvents: m.ReceivedEvents.WithLabelValues(kind, name),
		receivedBytes:  m.ReceivedBytes.WithLabelValues(kind, name),
		sentEvents:     m.SentEvents.WithLabelValues(kind, name),
		sentBytes:      m.SentBytes.WithLabelValues(kind, name),
	}
}

// Counters are one component's metrics.
type Counters struct {
	m                             *Metrics
	kind, name                    string
	receivedEvents, receivedBytes prometheus.Counter
	sentEvents, sentBytes         prometheus.Counter
}

// Received counts events and bytes taken in.
func (c *Counters) Received(events, bytes int) {
	c.receivedEvents.Add(float64(events))
	c.receivedBytes.Add(float64(bytes))
}

// Sent counts events and bytes passed on.
func (c *Counters) Sent(events, bytes int) {
	c.sentEvents.Add(float64(events))
	c.sentBytes.Add(float64(bytes))
}

// Error counts one failure under reason.
func (c *Counters) Error(reason string) { c.m.Errors.WithLabelValues(c.kind, c.name, reason).Inc() }

// DeadLettered counts n records sent to the DLQ by stage.
func (c *Counters) DeadLettered(stage string, n int) {
	c.m.DeadLettered.WithLabelValues(c.kind, c.name, stage).Add(float64(n))
}

// Discarded counts n records deliberately skipped under reason.
func (c *Counters) Discarded(reason string, n int) {
	c.m.Discarded.WithLabelValues(c.kind, c.name, reason).Add(float64(n))
}

// Request counts one answered request by status code.
func (c *Counters) Request(code string) { c.m.Requests.WithLabelValues(c.kind, c.name, code).Inc() }

// Retry counts one retried delivery.
func (c *Counters) Retry() { c.m.Retries.WithLabelValues(c.kind, c.name).Inc() }

// MillisBehind returns the millis-behind-latest gauge of one shard.
func (c *Counters) MillisBehind(shard string) prometheus.Gauge {
	return c.m.MillisBehindLatest.WithLabelValues(c.kind, c.name, shard)
}

// Connections returns the open-connections gauge.
func (c *Counters) Connections() prometheus.Gauge {
	return c.m.Connections.WithLabelValues(c.kind, c.name)
}
