// Package pipeline builds Vigil's topology from a config and runs it: the stream,
// the sinks (each with its own durable consumer), the processing stage and the
// sources. It starts downstream first and stops upstream first, so every stage
// drains into a live consumer.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/deadletter"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/processors"
	"github.com/vigil-sec/vigil/internal/process/threshold"
	"github.com/vigil-sec/vigil/internal/stream"
)

// Options are what a pipeline needs besides its config.
type Options struct {
	Log      *slog.Logger
	Registry *components.Registry
	// Version fills agent.version.
	Version string
	// NoSources runs the stream, sinks and processing but not the configured
	// sources: `vigil backfill` stores through Intake instead.
	NoSources bool
}

// Pipeline is a running (or runnable) Vigil node.
type Pipeline struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger

	prom    *prometheus.Registry
	metrics *component.Metrics

	st       *stream.Stream
	sources  []sourceEntry
	sinks    []*sinkRunner
	leased   []*leasedSink // on a cluster, instead of sinks
	node     *node         // on a cluster: this node's lasting id
	registry *registry     // on a cluster: this node's entry in the node registry
	proc     *process.Stage
	aggs     []*threshold.Aggregator
	letters  *deadletter.Writer
	budget   *intakeBudget
	storeIDs *storeIDs // nil on the embedded server: see intake.storeIDs

	// pruneEvery, when set (by tests), is how often sink runners prune.
	pruneEvery time.Duration

	mu      sync.Mutex
	started bool
	stopped bool
}

type sourceEntry struct {
	name string
	src  component.Source
}

// New checks that every component can be built from cfg. Nothing is started.
func New(cfg *config.Config, opts Options) (*Pipeline, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = components.Builtin()
	}
	p := &Pipeline{cfg: cfg, opts: opts, log: opts.Log, prom: prometheus.NewRegistry()}
	p.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p.metrics = component.NewMetrics(p.prom)
	return p, nil
}

// Metrics returns the pipeline's Prometheus registry.
func (p *Pipeline) Metrics() *prometheus.Registry { return p.prom }

// Aggregators returns the threshold rules' aggregators of this node.
func (p *Pipeline) Aggregators() []*threshold.Aggregator { return p.aggs }

// Stream returns the open stream (nil before Start).
func (p *Pipeline) Stream() *stream.Stream { return p.st }

// Sources returns the running sources by name.
func (p *Pipeline) Sources() map[string]component.Source {
	out := map[string]component.Source{}
	for _, s := range p.sources {
		out[s.name] = s.src
	}
	return out
}

// Sinks returns the running sinks by name.
func (p *Pipeline) Sinks() map[string]component.Sink {
	out := map[string]component.Sink{}
	for _, r := range p.sinks {
		out[r.cfg.Name] = r.sink
	}
	for _, l := range p.leased {
		if r := l.holding(); r != nil {
			out[r.cfg.Name] = r.sink
		}
	}
	return out
}

// Start opens the stream and starts sinks, processing and sources, in that order.
// On error everything started so far is stopped again.
func (p *Pipeline) Start(ctx context.Context) (err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return errors.New("pipeline: already started")
	}
	p.started = true
	defer func() {
		if err != nil {
			p.stopLocked(context.Background())
		}
	}()
	st, err := stream.Open(ctx, p.cfg.Buffer, p.cfg.DataDir, p.log)
	if err != nil {
		return err
	}
	p.st = st
	p.prom.MustRegister(&streamCollector{p: p})
	p.letters = deadletter.NewWriter(st, p.cfg.Buffer.DLQ, p.prom, p.log)
	p.budget = newIntakeBudget(p.cfg.Limits.Share(4))
	reg := p.opts.Registry
	hostname, _ := os.Hostname()

	if p.cfg.Buffer.Type == "nats" {
		p.storeIDs = newStoreIDs()
		// On a cluster: a lasting node id (for sink leases and the node registry).
		if p.node, err = openNode(p.cfg.DataDir); err != nil {
			return err
		}
	}
	if p.cfg.RunsSinks() && p.node != nil {
		// Several process nodes may run: each sink runs on the holder of its lease.
		if err := p.startLeasedSinks(ctx); err != nil {
			return err
		}
	} else if p.cfg.RunsSinks() {
		for _, sc := range p.cfg.Sinks {
			r, err := p.newSinkRunner(sc)
			if err != nil {
				return err
			}
			p.sinks = append(p.sinks, r)
			if err := r.start(ctx); err != nil {
				return err
			}
		}
	}
	if p.cfg.RunsProcessing() {
		// Threshold rules: every processing node runs one aggregator per rule, of
		// which only the holder of the rule's lease aggregates (the others stand by
		// to take over). They consume the samples processing publishes and publish
		// alerts to the events stream: downstream of processing, so they start
		// before it and stop after it.
		aggs, err := threshold.NewAggregators(processors.Configured(p.cfg), st, p.log)
		if err != nil {
			return err
		}
		for _, a := range aggs {
			p.aggs = append(p.aggs, a)
			if err := a.Start(ctx); err != nil {
				return err
			}
		}
		if len(aggs) > 0 {
			p.prom.MustRegister(&thresholdCollector{p: p})
		}
		p.proc = process.NewStage(p.cfg, process.StageDeps{Stream: st, Formats: reg.Format, Types: reg.Processor,
			Processors: processors.Configured(p.cfg), Letters: p.letters, Log: p.log, Counters: p.metrics.For("processing", "processing"),
			Version: p.opts.Version, Hostname: hostname})
		if err := p.proc.Start(ctx); err != nil {
			return err
		}
	}
	if p.cfg.RunsSources() && !p.opts.NoSources {
		for _, sc := range p.cfg.Sources {
			f, ok := reg.Sources[sc.Type]
			if !ok {
				return fmt.Errorf("source %s: unknown type %q", sc.Name, sc.Type)
			}
			counters := p.metrics.For("source", sc.Name)
			in := &intake{st: st, source: sc.Name, format: sc.Format, dataset: sc.Dataset, letters: p.letters, budget: p.budget, counters: counters, storeIDs: p.storeIDs}
			whole := false
			if fm, ok := reg.Format(sc.Format); ok {
				whole = fm.WholeRecord
			}
			src, err := f.New(sc.Settings, component.SourceDeps{Name: sc.Name, Source: sc, Intake: in,
				Log: p.log.With("source", sc.Name), Metrics: p.metrics, Embedded: p.cfg.Embedded, UnitID: p.storeIDs.newFunc(),
				DataDir: p.cfg.DataDir, WholeRecords: whole, FormatWholeRecord: func(name string) bool {
					fm, ok := reg.Format(name)
					return ok && fm.WholeRecord
				}, KV: func(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
					return st.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket,
						Description: "Vigil source " + sc.Name + " state", Storage: jetstream.FileStorage, Replicas: st.Replicas()})
				}})
			if err != nil {
				return fmt.Errorf("source %s: %w", sc.Name, err)
			}
			p.sources = append(p.sources, sourceEntry{name: sc.Name, src: src})
			if err := src.Start(ctx); err != nil {
				return err
			}
		}
	}
	if p.node != nil {
		if p.registry, err = startRegistry(ctx, p); err != nil {
			return fmt.Errorf("node registry: %w", err)
		}
	}
	return nil
}

// Intake returns an intake that stores records as source's, with format as the
// source's format, for a command that reads data itself (`vigil backfill`). The
// pipeline must be started; the intake is valid until Stop.
func (p *Pipeline) Intake(source, format string) component.Intake {
	dataset := ""
	if sc, ok := p.cfg.Source(source); ok {
		dataset = sc.Dataset
	}
	return &intake{st: p.st, source: source, format: format, dataset: dataset, letters: p.letters, budget: p.budget,
		counters: p.metrics.For("source", source), storeIDs: p.storeIDs}
}

// SourceCounters returns the metrics of a source by name, for a command that
// stores through Intake.
func (p *Pipeline) SourceCounters(name string) *component.Counters {
	return p.metrics.For("source", name)
}

// WaitDrained waits until processing has taken every intake message and every sink
// has acknowledged every event batch it takes (nothing pending, nothing
// unacknowledged), or ctx ends. Only for a node that runs processing and sinks.
func (p *Pipeline) WaitDrained(ctx context.Context) error {
	type cons struct{ stream, name string }
	all := []cons{{stream.IntakeStream, process.ProcessingConsumer}}
	for _, sc := range p.cfg.Sinks {
		all = append(all, cons{stream.EventsStream, ConsumerName(sc.Name)})
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		drained := true
		for _, c := range all {
			info, err := p.st.JetStream().Consumer(ctx, c.stream, c.name)
			if err != nil {
				drained = false
				break
			}
			ci := info.CachedInfo()
			if ci.NumPending > 0 || ci.NumAckPending > 0 {
				drained = false
				break
			}
		}
		if drained {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Stop stops sources, then processing, then sinks, then the stream, within ctx's
// deadline. It is idempotent and safe without Start.
func (p *Pipeline) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(ctx)
}

func (p *Pipeline) stopLocked(ctx context.Context) error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	var errs []error
	for i := len(p.sources) - 1; i >= 0; i-- {
		if err := p.sources[i].src.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", p.sources[i].name, err))
		}
	}
	if p.proc != nil {
		if err := p.proc.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(p.aggs) - 1; i >= 0; i-- {
		if err := p.aggs[i].Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(p.sinks) - 1; i >= 0; i-- {
		if err := p.sinks[i].stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", p.sinks[i].cfg.Name, err))
		}
	}
	for i := len(p.leased) - 1; i >= 0; i-- {
		if err := p.leased[i].stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	p.registry.stop()
	if p.st != nil {
		p.st.Close()
	}
	p.node.close()
	return errors.Join(errs...)
}

// Ready reports whether the stream is up and every source is accepting, and if not,
// why.
func (p *Pipeline) Ready() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st == nil || !p.st.Ready() {
		return false, "stream not connected"
	}
	if p.stopped {
		return false, "shutting down"
	}
	for _, s := range p.sources {
		if !s.src.Ready() {
			return false, "source " + s.name + " not accepting"
		}
	}
	if ws := p.warnings(); len(ws) > 0 {
		return true, "ok; warning: " + strings.Join(ws, "; warning: ")
	}
	return true, "ok"
}

// Thresholds of the warnings on /readyz (and the matching alerts in docs/durability.md).
const (
	dlqWarnFill    = 0.8  // the dead-letter stream this full
	intakeWarnLeft = 0.25 // unprocessed intake with this share of max_age left
)

// warnings are conditions that need an operator before they cost data: a dead-letter
// stream about to overflow, unprocessed intake records about to age out.
func (p *Pipeline) warnings() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	usages, err := p.st.Usages(ctx)
	if err != nil {
		return nil
	}
	var ws []string
	for _, u := range usages {
		if u.Name == stream.DLQStream && u.MaxBytes > 0 && float64(u.Bytes) >= dlqWarnFill*float64(u.MaxBytes) {
			ws = append(ws, fmt.Sprintf("dead-letter stream %.0f%% full (buffer.dlq.overflow %s discards letters when it is full)",
				100*float64(u.Bytes)/float64(u.MaxBytes), p.cfg.Buffer.DLQ.Overflow))
		}
	}
	if p.proc != nil {
		if left, ok := p.intakeTimeLeft(ctx); ok && left < time.Duration(intakeWarnLeft*float64(p.cfg.Buffer.Intake.MaxAge)) {
			ws = append(ws, fmt.Sprintf("the oldest unprocessed intake record is removed by buffer.intake.max_age in %s", left.Round(time.Second)))
		}
	}
	return ws
}

// intakeTimeLeft is how long until intake's max_age removes the oldest record
// processing has not acknowledged; false when there is none.
func (p *Pipeline) intakeTimeLeft(ctx context.Context) (time.Duration, bool) {
	js := p.st.JetStream()
	cons, err := js.Consumer(ctx, stream.IntakeStream, process.ProcessingConsumer)
	if err != nil {
		return 0, false
	}
	info, err := cons.Info(ctx)
	if err != nil || info.NumPending+uint64(info.NumAckPending) == 0 {
		return 0, false
	}
	s, err := js.Stream(ctx, stream.IntakeStream)
	if err != nil {
		return 0, false
	}
	m, err := s.GetMsg(ctx, info.AckFloor.Stream+1)
	if err != nil {
		return 0, false
	}
	return p.cfg.Buffer.Intake.MaxAge - time.Since(m.Time), true
}
