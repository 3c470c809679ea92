package webhooksink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/webhooksink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestPipelineEndToEnd posts alerts to an http source of a real pipeline (embedded
// JetStream) whose webhook sink takes the vigil.alert dataset: every alert arrives
// signed, with the event.id the pipeline gave it in X-Vigil-Alert-Id, and alerts
// of other datasets do not.
func TestPipelineEndToEnd(t *testing.T) {
	var mu sync.Mutex
	byID := map[string]int{}
	var bad []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhooksink.Verify([]byte(testSecret), r.Header.Get(webhooksink.HeaderTimestamp),
			r.Header.Get(webhooksink.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			bad = append(bad, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var doc struct {
			Event struct {
				ID, Kind, Dataset string
			}
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.Event.ID == "" || doc.Event.ID != r.Header.Get(webhooksink.HeaderAlertID) ||
			doc.Event.Dataset != "vigil.alert" {
			bad = append(bad, fmt.Sprintf("%v: %s (header %q)", err, body, r.Header.Get(webhooksink.HeaderAlertID)))
		}
		byID[doc.Event.ID]++
	}))
	defer srv.Close()

	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Admin.Address = ""
	h := httpsource.NewConfig()
	h.Address = "127.0.0.1:0"
	h.PathDataset = true
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "web", Type: "http", Format: "json", FormatOptions: opts, Settings: h}}
	s := testConfig(srv.URL)
	cfg.Sinks = []*config.Sink{{Name: "soar", Type: "webhook", Inputs: []string{"vigil.alert"}, Settings: s}}
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
	post := func(dataset string, n int) {
		t.Helper()
		var body bytes.Buffer
		for i := range n {
			fmt.Fprintf(&body, `{"event":{"kind":"alert","severity":73},"rule":{"id":"r%d","name":"Rule %d"},"source":{"ip":"203.0.113.%d"}}`+"\n", i, i, i)
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
	const total = 20
	post("vigil.alert", total)
	post("other", 5) // not an input of the sink
	testutil.Eventually(t, 30*time.Second, "20 alerts at the webhook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(byID) >= total
	})
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(byID) != total || len(bad) > 0 {
		t.Errorf("%d distinct alerts, want %d; problems: %q", len(byID), total, bad)
	}
}
