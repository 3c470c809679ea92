package s3sink_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/s3sink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// registry is the built-in registry plus the s3 sink (what internal/components will
// list).
func registry() *components.Registry {
	reg := components.Builtin()
	reg.Sinks["s3"] = components.SinkFactory{
		NewConfig: func() config.Component { return s3sink.NewConfig() },
		New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
			return s3sink.New(c.(*s3sink.Config), d)
		},
	}
	return reg
}

// TestPipeline runs a real pipeline (embedded JetStream, http source) into the s3
// sink on versitygw and checks every posted event arrives once.
func TestPipeline(t *testing.T) {
	g := startGateway(t)
	reg := registry()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Admin.Address = ""
	h := httpsource.NewConfig()
	h.Address = "127.0.0.1:0"
	h.PathDataset = true
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "web", Type: "http", Format: "json", FormatOptions: opts, Settings: h}}
	sc := sinkConfig(g)
	sc.MaxAge = 300 * time.Millisecond
	cfg.Sinks = []*config.Sink{{Name: "lake", Type: "s3", Inputs: []string{"*"}, Settings: sc}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.DiscardHandler), Version: "test", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	base := "http://" + p.Sources()["web"].(*httpsource.Source).Addr()
	const posts, per = 10, 50
	for i := range posts {
		var body bytes.Buffer
		for j := range per {
			fmt.Fprintf(&body, `{"n":"%d-%d","message":"hello %d"}`+"\n", i, j, j)
		}
		resp, err := http.Post(base+"/v1/events/app", "application/x-ndjson", &body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("post %d: status %d", i, resp.StatusCode)
		}
	}
	var docs []map[string]any
	testutil.Eventually(t, 30*time.Second, "every event in the bucket", func() bool {
		docs = g.NDJSONDocs(t)
		return len(docs) >= posts*per
	})
	seen := map[string]int{}
	for _, d := range docs {
		n, _ := testutil.Field(d, "n").(string)
		seen[n]++
		if testutil.Field(d, "event.dataset") != "app" {
			t.Errorf("dataset of %v", d)
		}
	}
	for i := range posts {
		for j := range per {
			if k := fmt.Sprintf("%d-%d", i, j); seen[k] != 1 {
				t.Errorf("event %s stored %d times", k, seen[k])
			}
		}
	}
}
