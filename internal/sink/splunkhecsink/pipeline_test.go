package splunkhecsink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/splunkhecsink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// registry is the built-in registry plus the splunk_hec sink (what
// internal/components will list).
func registry() *components.Registry {
	reg := components.Builtin()
	reg.Sinks["splunk_hec"] = components.SinkFactory{
		NewConfig: func() config.Component { return splunkhecsink.NewConfig() },
		New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
			return splunkhecsink.New(c.(*splunkhecsink.Config), d)
		},
	}
	return reg
}

// hecCounter is a minimal HEC with indexer acknowledgement that counts events by
// their ECS event.id; acks turn true on the second poll, and the first request's
// ack is lost, so the pipeline run covers a resend too.
type hecCounter struct {
	mu      sync.Mutex
	byID    map[string]int
	next    uint64
	pending map[uint64][]string
	polls   map[uint64]int
	lost    bool
}

func (h *hecCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Splunk e2e-token" {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"text":"Invalid token","code":4}`)
		return
	}
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rd = zr
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch r.URL.Path {
	case "/services/collector/event":
		dec := json.NewDecoder(rd)
		var ids []string
		for {
			var ev struct {
				Event struct {
					Event struct {
						ID string `json:"id"`
					} `json:"event"`
				} `json:"event"`
			}
			if err := dec.Decode(&ev); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"text":"Invalid data format","code":6,"invalid-event-number":`+strconv.Itoa(len(ids))+`}`)
				return
			}
			ids = append(ids, ev.Event.Event.ID)
		}
		id := h.next
		h.next++
		if !h.lost {
			h.lost = true // this request's events and ack are lost
		} else {
			h.pending[id] = ids
		}
		fmt.Fprintf(w, `{"text":"Success","code":0,"ackId":%d}`, id)
	case "/services/collector/ack":
		var q struct {
			Acks []uint64 `json:"acks"`
		}
		_ = json.NewDecoder(rd).Decode(&q)
		out := map[string]bool{}
		for _, id := range q.Acks {
			ids, ok := h.pending[id]
			h.polls[id]++
			if ok && h.polls[id] >= 2 {
				for _, e := range ids {
					h.byID[e]++
				}
				delete(h.pending, id)
				out[strconv.FormatUint(id, 10)] = true
			} else {
				out[strconv.FormatUint(id, 10)] = false
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"acks": out})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (h *hecCounter) counts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.byID))
	for k, v := range h.byID {
		out[k] = v
	}
	return out
}

// TestPipelineEndToEnd posts events to an http source of a real pipeline (embedded
// JetStream) whose splunk_hec sink delivers to an HEC with acknowledgement: every
// event arrives exactly once, including those of the request whose ack was lost.
func TestPipelineEndToEnd(t *testing.T) {
	hec := &hecCounter{byID: map[string]int{}, pending: map[uint64][]string{}, polls: map[uint64]int{}}
	srv := httptest.NewServer(hec)
	defer srv.Close()

	reg := registry()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Admin.Address = ""
	cfg.Buffer.AckWait = 5 * time.Second
	h := httpsource.NewConfig()
	h.Address = "127.0.0.1:0"
	h.PathDataset = true
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "web", Type: "http", Format: "json", FormatOptions: opts, Settings: h}}
	s := splunkhecsink.NewConfig()
	s.URL = srv.URL
	s.Token = "e2e-token"
	s.IndexerAcknowledgement = true
	s.Batch.MaxWait = 50 * time.Millisecond
	s.Batch.MaxEvents = 150
	s.Ack.PollInterval = 30 * time.Millisecond
	s.Ack.Timeout = 500 * time.Millisecond
	s.Retry = splunkhecsink.Retry{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	cfg.Sinks = []*config.Sink{{Name: "splunk", Type: "splunk_hec", Inputs: []string{"aws.*"}, Settings: s}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Version: "test", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop(context.Background()) }()
	base := "http://" + p.Sources()["web"].(*httpsource.Source).Addr()

	post := func(dataset string, from, n int) {
		t.Helper()
		var body bytes.Buffer
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&body, `{"message":"event %d","n":%d}`+"\n", i, i)
		}
		resp, err := http.Post(base+"/v1/events/"+dataset, "application/x-ndjson", &body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("post: %d", resp.StatusCode)
		}
	}
	const total = 1000
	for i := 0; i < total; i += 100 {
		ds := "aws.cloudtrail"
		if i%200 == 0 {
			ds = "aws.vpcflow"
		}
		post(ds, i, 100)
	}
	post("other", total, 50) // not an input of the sink
	testutil.Eventually(t, 30*time.Second, "1000 events in HEC", func() bool { return len(hec.counts()) >= total })
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := hec.counts()
	if len(got) != total {
		t.Errorf("%d distinct events, want %d", len(got), total)
	}
	for id, n := range got {
		if n != 1 || id == "" {
			t.Errorf("event %q indexed %d times", id, n)
		}
	}
}

// TestConfigFromYAML loads the documented config shape through the config loader.
func TestConfigFromYAML(t *testing.T) {
	t.Setenv("HEC_TOKEN", "yaml-token")
	yaml := `
sources:
  web:
    type: http
    format: json
sinks:
  splunk:
    type: splunk_hec
    url: https://splunk.example:8088
    token: "${HEC_TOKEN}"
    indexer_acknowledgement: true
    inputs: ["aws.*"]
    datasets:
      "aws.cloudtrail": {sourcetype: "aws:cloudtrail", index: security}
      default: {index: main}
    batch: {max_bytes: 512KiB, max_events: 500}
    ack: {poll_interval: 2s, timeout: 1m, max_pending: 100}
`
	cfg, err := config.Parse([]byte(yaml), "test.yaml", registry())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Sinks[0].Settings.(*splunkhecsink.Config)
	if c.Token != "yaml-token" || !c.IndexerAcknowledgement || c.Datasets["aws.cloudtrail"].Sourcetype != "aws:cloudtrail" ||
		c.Batch.MaxBytes != 512<<10 || c.Ack.MaxPending != 100 || c.Compression != "gzip" || c.MaxInFlight != 4 {
		t.Errorf("config: %+v", c)
	}
	bad := []byte(`
sources:
  web: {type: http, format: json}
sinks:
  splunk: {type: splunk_hec, url: "https://s:8088", inputs: ["*"], tokn: x}
`)
	if _, err := config.Parse(bad, "bad.yaml", registry()); err == nil || !strings.Contains(err.Error(), "tokn") {
		t.Errorf("typo not reported: %v", err)
	}
}
