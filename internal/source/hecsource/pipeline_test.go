package hecsource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/hecsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// No Go HEC client library is served by the module proxy here, so hecClient speaks
// the protocol as Splunk documents it, the way Splunk's logging libraries do:
// batches of concatenated JSON events, gzip, "Authorization: Splunk <token>", a
// channel GUID, and polling /services/collector/ack until every ackId is true.
type hecClient struct {
	url, token, channel string
}

type hecAnswer struct {
	Text  string  `json:"text"`
	Code  int     `json:"code"`
	AckID *uint64 `json:"ackId"`
}

func (c *hecClient) post(t testing.TB, path string, body []byte) (int, hecAnswer) {
	t.Helper()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(body)
	_ = zw.Close()
	req, err := http.NewRequest(http.MethodPost, c.url+path, &z)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Splunk "+c.token)
	req.Header.Set("X-Splunk-Request-Channel", c.channel)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a hecAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return resp.StatusCode, a
}

func (c *hecClient) acked(t testing.TB, ids []uint64) bool {
	t.Helper()
	q, _ := json.Marshal(map[string][]uint64{"acks": ids})
	req, _ := http.NewRequest(http.MethodPost, c.url+"/services/collector/ack", bytes.NewReader(q))
	req.Header.Set("Authorization", "Splunk "+c.token)
	req.Header.Set("X-Splunk-Request-Channel", c.channel)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Acks map[string]bool `json:"acks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !a.Acks[fmt.Sprint(id)] {
			return false
		}
	}
	return true
}

// TestHECThroughPipeline sends batches with indexer acknowledgement through a real
// pipeline (embedded JetStream, processing, file archive) and counts the documents.
func TestHECThroughPipeline(t *testing.T) {
	dir := t.TempDir()
	reg := components.Builtin()
	reg.Sources["hec"] = components.SourceFactory{
		NewConfig: func() config.Component { return hecsource.NewConfig() },
		New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
			return hecsource.New(c.(*hecsource.Config), d), nil
		},
	}
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	cfg.Buffer.AckWait = 5 * time.Second
	hc := hecsource.NewConfig()
	hc.Address = "127.0.0.1:0"
	hc.Tokens = []string{"e2e-token"}
	hc.IndexerAcknowledgement = true
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "splunk_compat", Type: "hec", Format: "json", FormatOptions: opts, Dataset: "app.hec", Settings: hc}}
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
	c := &hecClient{url: "http://" + p.Sources()["splunk_compat"].(*hecsource.Source).Addr(),
		token: "e2e-token", channel: "6f0a8a5e-0c9b-4d7e-9a51-2b1f3c4d5e6f"}

	const batches, perBatch = 5, 200
	var ids []uint64
	for b := range batches {
		var body bytes.Buffer
		for i := range perBatch {
			fmt.Fprintf(&body, `{"time":%d.250,"host":"web-%d","source":"/var/log/app.log","sourcetype":"app:json","index":"main","event":{"seq":%d,"msg":"hello"},"fields":{"env":"test"}}`,
				1700000000+b, b, b*perBatch+i)
		}
		status, ans := c.post(t, "/services/collector/event", body.Bytes())
		if status != 200 || ans.Code != 0 || ans.AckID == nil || *ans.AckID != uint64(b) {
			t.Fatalf("batch %d: %d %+v", b, status, ans)
		}
		ids = append(ids, *ans.AckID)
	}
	status, ans := c.post(t, "/services/collector/raw?host=fw-1&sourcetype=syslog", []byte("raw line one\nraw line two\n"))
	if status != 200 || ans.AckID == nil {
		t.Fatalf("raw: %d %+v", status, ans)
	}
	ids = append(ids, *ans.AckID)
	if !c.acked(t, ids) {
		t.Fatal("stored batches not acknowledged")
	}

	want := batches*perBatch + 2
	var docs []map[string]any
	testutil.Eventually(t, 30*time.Second, "every event in the archive", func() bool {
		docs = testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))
		return len(docs) >= want
	})
	if len(docs) != want {
		t.Fatalf("%d documents, want %d", len(docs), want)
	}
	seqs := map[float64]bool{}
	for _, d := range docs {
		if testutil.Field(d, "event.dataset") != "app.hec" {
			t.Fatalf("dataset of %v", d)
		}
		if d["seq"] == nil {
			if testutil.Field(d, "host.name") != "fw-1" || testutil.Field(d, "splunk.sourcetype") != "syslog" {
				t.Errorf("raw document %v", d)
			}
			continue
		}
		seqs[d["seq"].(float64)] = true
		if testutil.Field(d, "splunk.fields.env") != "test" || testutil.Field(d, "splunk.index") != "main" ||
			testutil.Field(d, "host.name") == nil || d["msg"] != "hello" {
			t.Errorf("document %v", d)
		}
		if ts, _ := d["@timestamp"].(string); len(ts) < 20 || ts[19:] != ".250Z" && ts[19:] != ".25Z" {
			t.Errorf("@timestamp %v", d["@timestamp"])
		}
	}
	if len(seqs) != batches*perBatch {
		t.Errorf("%d distinct events, want %d", len(seqs), batches*perBatch)
	}
}
