package pipeline_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
	"github.com/vigil-sec/vigil/internal/wire"
)

// processorsConfig is the config of the processors issue, with an HTTP source and
// an archive under dir.
const processorsConfig = `
data_dir: %s
admin: {address: ""}
sources:
  web:
    type: http
    address: 127.0.0.1:0
    format: json
    path_dataset: true
processing:
  processors:
    - type: drop
      if: 'event.dataset == "syslog" && log.syslog.severity.code >= 7'
    - type: set
      field: labels.env
      value: prod
    - type: rename
      fields: {src_ip: source.ip}
    - type: remove
      fields: [event.original]
      if: 'event.dataset startsWith "aws."'
    - type: redact
      fields: [user.email, url.query]
      mode: hash
      key: "${REDACT_KEY}"
    - type: route
      dataset: security.high
      if: 'event.outcome == "failure" && "authentication" in event.category'
    - type: validate
      datasets: {"aws.*": builtin, "checked": testdata/checked.schema.json}
    - type: set
      name: count
      field: labels.n
      expr: 'int(labels.num) + 1'
      if: 'labels.num != nil && field("@timestamp") != nil'
sinks:
  archive:
    type: file_archive
    path: %s
    max_age: 200ms
    inputs: ["*"]
`

type processorsNode struct {
	p       *pipeline.Pipeline
	base    string
	archive string
}

func startProcessors(t *testing.T, key string) *processorsNode {
	t.Helper()
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	file := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, processorsConfig, dir, archive), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REDACT_KEY", key)
	cfg, err := config.Load(file, components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	p, base := start(t, cfg)
	return &processorsNode{p: p, base: base, archive: archive}
}

func TestProcessorsEndToEnd(t *testing.T) {
	const key = "a-redaction-key-of-32-bytes-long"
	n := startProcessors(t, key)
	base, archiveDir, p := n.base, n.archive, n.p
	docs := func() []map[string]any { return testutil.ArchiveDocs(t, archiveDir) }
	counter := func(name string, labels map[string]string) float64 { return counterValue(t, p, name, labels) }

	posts := []struct{ dataset, body string }{
		{"syslog", `{"message":"debug noise","log":{"syslog":{"severity":{"code":7}}}}`},
		{"syslog", `{"message":"kept syslog","log":{"syslog":{"severity":{"code":3}}}}`},
		{"myapp", `{"message":"login","src_ip":"10.1.2.3","user":{"email":"alice@example.com"},"url":{"query":"token=s3cret"},"event":{"outcome":"failure","category":["authentication"]}}`},
		{"myapp", `{"message":"again","user":{"email":"alice@example.com"},"event":{"outcome":"success","category":["authentication"]}}`},
		{"aws.custom", `{"message":"cloud"}`},
		{"checked", `{"message":"invalid","n":"one"}`},
		{"myapp", `{"message":"bad number","labels":{"num":"abc"}}`},
		{"myapp", `{"message":"good number","labels":{"num":"41"}}`},
	}
	for _, p := range posts {
		if code, out := post(t, base+"/v1/events/"+p.dataset, "application/json", p.body); code != 200 {
			t.Fatalf("%s: %d %v", p.dataset, code, out)
		}
	}
	var got []map[string]any
	testutil.Eventually(t, 20*time.Second, "5 documents in the archive", func() bool {
		got = docs()
		return len(got) >= 5
	})
	time.Sleep(500 * time.Millisecond) // one more rotation: nothing else may arrive
	got = docs()
	byMsg := map[string]map[string]any{}
	for _, d := range got {
		byMsg[fmt.Sprint(d["message"])] = d
	}
	if len(got) != 5 || byMsg["debug noise"] != nil || byMsg["invalid"] != nil || byMsg["bad number"] != nil {
		t.Fatalf("want 5 documents, without the dropped and the rejected ones, got %d: %v", len(got), got)
	}
	if n := testutil.Field(byMsg["good number"], "labels.n"); n != 42.0 {
		t.Errorf("set expr: labels.n = %v, want 42", n)
	}
	if n := counter("vigil_discarded_total", map[string]string{"reason": "drop:0"}); n != 1 {
		t.Fatalf("vigil_discarded_total{reason=drop:0} = %v, want 1", n)
	}
	for msg, d := range byMsg {
		if testutil.Field(d, "labels.env") != "prod" {
			t.Errorf("%s: labels.env not set: %v", msg, d)
		}
	}
	login := byMsg["login"]
	if testutil.Field(login, "source.ip") != "10.1.2.3" || login["src_ip"] != nil {
		t.Errorf("rename: %v", login)
	}
	if testutil.Field(login, "event.dataset") != "security.high" || testutil.Field(byMsg["again"], "event.dataset") != "myapp" {
		t.Errorf("route: login %v, again %v", testutil.Field(login, "event.dataset"), testutil.Field(byMsg["again"], "event.dataset"))
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("alice@example.com"))
	want := hex.EncodeToString(mac.Sum(nil))
	if testutil.Field(login, "user.email") != want || testutil.Field(byMsg["again"], "user.email") != want {
		t.Errorf("user.email: got %v and %v, want HMAC %s", testutil.Field(login, "user.email"), testutil.Field(byMsg["again"], "user.email"), want)
	}
	if q := fmt.Sprint(testutil.Field(login, "url.query")); len(q) != 64 || strings.Contains(q, "s3cret") {
		t.Errorf("url.query not hashed: %v", q)
	}
	if testutil.Field(byMsg["cloud"], "event.original") != nil || testutil.Field(byMsg["kept syslog"], "event.original") == nil {
		t.Errorf("remove if aws.*: cloud %v, syslog %v", byMsg["cloud"], byMsg["kept syslog"])
	}
	// A routed event is stored under its new dataset, where the archive files it.
	if m, _ := filepath.Glob(filepath.Join(archiveDir, "security.high", "*", "*", "*", "*", "*.ndjson.gz")); len(m) == 0 {
		t.Errorf("no archive file under security.high/")
	}
	// Rejections are dead-lettered with the processor that made them.
	if n := counter("vigil_dead_lettered_total", map[string]string{"stage": "validate"}); n != 1 {
		t.Errorf("validate dead letters = %v, want 1", n)
	}
	if n := counter("vigil_dead_lettered_total", map[string]string{"stage": "process"}); n != 1 {
		t.Errorf("process dead letters = %v, want 1", n)
	}
	ctx := context.Background()
	dlq, err := p.Stream().JetStream().Stream(ctx, stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dlq.GetLastMsgForSubject(ctx, wire.DLQSubject("process"))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(wire.HeaderProcessor); got != "7:set" || !strings.Contains(msg.Header.Get(wire.HeaderReason), "processors[7] (set count)") ||
		!strings.Contains(string(msg.Data), `"num":"abc"`) {
		t.Errorf("process dead letter: processor %q, reason %q, original %s", got, msg.Header.Get(wire.HeaderReason), msg.Data)
	}

	// Another key gives another hash of the same address.
	n2 := startProcessors(t, "another-redaction-key-32-bytes!!")
	if code, out := post(t, n2.base+"/v1/events/myapp", "application/json", `{"message":"other key","user":{"email":"alice@example.com"}}`); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	var other []map[string]any
	testutil.Eventually(t, 20*time.Second, "1 document in the second archive", func() bool {
		other = testutil.ArchiveDocs(t, n2.archive)
		return len(other) >= 1
	})
	if h := testutil.Field(other[0], "user.email"); h == want || len(fmt.Sprint(h)) != 64 {
		t.Errorf("another key must give another 64-hex-digit hash, got %v (first key: %s)", h, want)
	}
}

// slowProcessor takes longer than ack_wait on the first event it sees.
type slowProcessor struct{ once *sync.Once }

func (s slowProcessor) Process(*process.Item) (process.Verdict, error) {
	s.once.Do(func() { time.Sleep(3500 * time.Millisecond) })
	return process.Pass, nil
}

type noKeys struct{}

func (noKeys) Validate() error { return nil }

// TestSlowProcessingNotRedelivered holds one intake message for three times ack_wait:
// the stage's keep-alive must stop the stream from handing it to the other worker,
// so every record is received once.
func TestSlowProcessingNotRedelivered(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, func(c *config.Config, _ *httpsource.Config, _ *archivesink.Config) {
		c.Buffer.AckWait = time.Second
		c.Processing.Workers = 2
		c.Processing.Processors = []*config.Processor{{Type: "slow", Settings: noKeys{}}}
	})
	reg := components.Builtin()
	once := &sync.Once{}
	reg.Processors["slow"] = process.Type{Name: "slow", NewConfig: func() config.Component { return noKeys{} },
		New: func(config.Component, process.Deps) (process.Processor, error) { return slowProcessor{once}, nil }}
	p, base := startWith(t, cfg, reg)
	if code, out := post(t, base+"/v1/events/slow", "application/x-ndjson", "{\"n\":1}\n{\"n\":2}\n"); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	testutil.Eventually(t, 20*time.Second, "2 documents archived", func() bool {
		return len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))) >= 2
	})
	if n := counterValue(t, p, "vigil_received_events_total", map[string]string{"kind": "processing"}); n != 2 {
		t.Fatalf("processing received %v records, want 2 (a redelivery processed them twice)", n)
	}
	if n := len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))); n != 2 {
		t.Fatalf("%d documents archived, want 2", n)
	}
}
