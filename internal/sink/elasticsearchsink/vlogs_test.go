package elasticsearchsink_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/sink/elasticsearchsink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// registry is the built-in registry plus the elasticsearch sink (what
// internal/components will list).
func registry() *components.Registry {
	reg := components.Builtin()
	reg.Sinks["elasticsearch"] = components.SinkFactory{
		NewConfig: func() config.Component { return elasticsearchsink.NewConfig() },
		New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
			return elasticsearchsink.New(c.(*elasticsearchsink.Config), elasticsearchsink.FlavourElasticsearch, d)
		},
	}
	return reg
}

// pipelineConfig is an http source feeding the elasticsearch sink (and, when
// archive is set, a file archive too).
func pipelineConfig(t *testing.T, dir, esURL string, archive bool) *config.Config {
	t.Helper()
	reg := registry()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	h := httpsource.NewConfig()
	h.Address = "127.0.0.1:0"
	h.PathDataset = true
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "web", Type: "http", Format: "json", FormatOptions: opts, Settings: h}}
	es := elasticsearchsink.NewConfig()
	es.URLs = []string{esURL}
	es.Batch.MaxWait = 50 * time.Millisecond
	es.Batch.MaxEvents = 200
	es.Retry = elasticsearchsink.Retry{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	es.RequestTimeout = 5 * time.Second
	// VictoriaLogs reads its ingestion options from headers (or the query string).
	es.Headers = map[string]string{"VL-Time-Field": "@timestamp", "VL-Msg-Field": "message"}
	es.InstallTemplates = true
	cfg.Sinks = []*config.Sink{{Name: "search", Type: "elasticsearch", Inputs: []string{"*"}, Settings: es}}
	if archive {
		a := archivesink.NewConfig()
		a.MaxAge = 200 * time.Millisecond
		cfg.Sinks = append(cfg.Sinks, &config.Sink{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startPipeline(t *testing.T, cfg *config.Config) (*pipeline.Pipeline, string) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Version: "test", Registry: registry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p, "http://" + p.Sources()["web"].(*httpsource.Source).Addr()
}

func postEvents(t *testing.T, base, dataset string, from, n int) {
	t.Helper()
	var body bytes.Buffer
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&body, `{"message":"event %d","n":%d,"user":{"name":"u%d"}}`+"\n", i, i, i%7)
	}
	resp, err := http.Post(base+"/v1/events/"+dataset, "application/x-ndjson", &body)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post: %d %s", resp.StatusCode, out)
	}
}

// checkExactlyOnce fails unless rows hold want distinct event IDs, each once.
func checkExactlyOnce(t *testing.T, seen map[string]int, want int) {
	t.Helper()
	if len(seen) != want {
		t.Errorf("%d distinct event IDs, want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 || len(id) == 0 {
			t.Errorf("event %q stored %d times", id, n)
		}
	}
}

// TestVictoriaLogsEndToEnd sends events through a real pipeline into VictoriaLogs
// and reads them back: every event once, fields intact. A restart of the pipeline
// in the middle resumes without loss or duplicates.
func TestVictoriaLogsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VictoriaLogs")
	}
	v := testutil.StartVictoriaLogs(t)
	dir := t.TempDir()
	p, base := startPipeline(t, pipelineConfig(t, dir, v.BulkURL(), false))
	postEvents(t, base, "app.one", 0, 300)
	postEvents(t, base, "app.two", 300, 200)
	testutil.Eventually(t, 60*time.Second, "500 rows in VictoriaLogs", func() bool { return len(v.Rows(t)) >= 500 })
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, base = startPipeline(t, pipelineConfig(t, dir, v.BulkURL(), false))
	postEvents(t, base, "app.one", 500, 100)
	testutil.Eventually(t, 60*time.Second, "600 rows in VictoriaLogs", func() bool { return len(v.Rows(t)) >= 600 })

	rows := v.Rows(t)
	seen := map[string]int{}
	byMsg := map[string]map[string]string{}
	for _, r := range rows {
		seen[r["event.id"]]++
		byMsg[r["_msg"]] = r
	}
	checkExactlyOnce(t, seen, 600)
	r := byMsg["event 301"]
	if r == nil || r["event.dataset"] != "app.two" || r["user.name"] != "u0" || r["n"] != "301" || r["agent.type"] != "vigil" {
		t.Errorf("row of event 301: %v", r)
	}
}

// TestVictoriaLogsOutage stops VictoriaLogs while events flow into a pipeline with
// an archive and the elasticsearch sink: the archive keeps receiving everything,
// the sink holds its batches unacknowledged and retries, and once VictoriaLogs is
// back on the same data directory every event is there exactly once.
func TestVictoriaLogsOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VictoriaLogs")
	}
	v := testutil.StartVictoriaLogs(t)
	dir := t.TempDir()
	p, base := startPipeline(t, pipelineConfig(t, dir, v.BulkURL(), true))
	const requests, per = 30, 50
	total := 0
	for i := range requests {
		if i == 10 {
			// Let some arrive first, so the outage starts with data in VictoriaLogs.
			testutil.Eventually(t, 30*time.Second, "first events in VictoriaLogs", func() bool { return len(v.Rows(t)) > 0 })
			v.Stop()
		}
		postEvents(t, base, "outage", total, per)
		total += per
	}
	// Everything reaches the archive while the search side is down.
	archive := filepath.Join(dir, "archive")
	testutil.Eventually(t, 30*time.Second, "all events archived during the outage", func() bool {
		return len(testutil.ArchiveDocs(t, archive)) >= total
	})
	if got := len(testutil.ArchiveDocs(t, archive)); got != total {
		t.Fatalf("archive holds %d documents, want %d", got, total)
	}
	v.Start(t)
	testutil.Eventually(t, 60*time.Second, "all events in VictoriaLogs after the outage", func() bool {
		return len(v.Rows(t)) >= total
	})
	checkExactlyOnce(t, v.CountByID(t), total)
	if n := connectErrors(t, p); n == 0 {
		t.Error("the sink never saw VictoriaLogs down: the outage was not exercised")
	}
}

// connectErrors reads vigil_errors_total{component="search",reason="connect"}.
func connectErrors(t *testing.T, p *pipeline.Pipeline) float64 {
	t.Helper()
	mfs, err := p.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "vigil_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["component"] == "search" && labels["reason"] == "connect" {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
