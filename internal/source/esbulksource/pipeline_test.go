package esbulksource_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/esbulksource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestBulkIndexerThroughPipeline sends documents with the official Go client's
// BulkIndexer (which first checks GET / for the product) through a real pipeline
// into the archive, and counts them exactly.
func TestBulkIndexerThroughPipeline(t *testing.T) {
	dir := t.TempDir()
	reg := components.Builtin()
	reg.Sources["elasticsearch_bulk"] = components.SourceFactory{
		NewConfig: func() config.Component { return esbulksource.NewConfig() },
		New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
			return esbulksource.New(c.(*esbulksource.Config), d), nil
		},
	}
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	cfg.Buffer.AckWait = 5 * time.Second
	sc := esbulksource.NewConfig()
	sc.Address = "127.0.0.1:0"
	sc.Users = []esbulksource.User{{Username: "shipper", Password: "s3cret"}}
	sc.IndexAsDataset = true
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "es_compat", Type: "elasticsearch_bulk", Format: "json", FormatOptions: opts, Settings: sc}}
	a := archivesink.NewConfig()
	a.MaxAge = 200 * time.Millisecond
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.DiscardHandler), Registry: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	addr := p.Sources()["es_compat"].(*esbulksource.Source).Addr()

	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: []string{"http://" + addr}, Username: "shipper", Password: "s3cret",
		CompressRequestBody: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := es.Info()
	if err != nil {
		t.Fatal(err)
	}
	info.Body.Close()
	if info.StatusCode != 200 {
		t.Fatalf("GET /: %s", info)
	}
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client: es, Index: "logs-app.web-default", NumWorkers: 2, FlushBytes: 64 << 10, FlushInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	var ok, failed atomic.Int64
	for i := range n {
		action, index := "create", ""
		if i%3 == 0 {
			action, index = "index", "audit-2025.01.31"
		}
		err := bi.Add(context.Background(), esutil.BulkIndexerItem{
			Action: action, Index: index,
			Body: strings.NewReader(fmt.Sprintf(`{"@timestamp":"2025-01-31T10:00:00Z","seq":%d,"message":"doc %d"}`, i, i)),
			OnSuccess: func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem) {
				if res.Status == 201 && res.DocumentID != "" {
					ok.Add(1)
				}
			},
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
				failed.Add(1)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// One bad document and one delete, each answered per item.
	for _, it := range []esutil.BulkIndexerItem{
		{Action: "create", Body: bytes.NewReader([]byte(`{"broken":`))},
		{Action: "delete", DocumentID: "x"},
	} {
		it.OnFailure = func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
			if res.Status == 400 {
				failed.Add(1)
			}
		}
		if err := bi.Add(context.Background(), it); err != nil {
			t.Fatal(err)
		}
	}
	if err := bi.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := bi.Stats()
	if ok.Load() != n || failed.Load() != 2 || st.NumFailed != 2 {
		t.Fatalf("succeeded %d, failed %d (stats %+v); want %d and 2", ok.Load(), failed.Load(), st, n)
	}

	var docs []map[string]any
	testutil.Eventually(t, 30*time.Second, "every document in the archive", func() bool {
		docs = testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))
		return len(docs) >= n
	})
	if len(docs) != n {
		t.Fatalf("%d documents, want %d", len(docs), n)
	}
	seqs := map[float64]bool{}
	datasets := map[string]int{}
	for _, d := range docs {
		seqs[d["seq"].(float64)] = true
		datasets[fmt.Sprint(testutil.Field(d, "event.dataset"))]++
	}
	if len(seqs) != n || datasets["app.web"] != 2000 || datasets["audit"] != 1000 {
		t.Errorf("%d distinct documents, datasets %v", len(seqs), datasets)
	}
}
