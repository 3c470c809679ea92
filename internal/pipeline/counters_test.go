package pipeline_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/esbulksource"
	"github.com/vigil-sec/vigil/internal/source/hecsource"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
	"github.com/vigil-sec/vigil/internal/wire"
)

const countersConfig = `
data_dir: %s
admin: {address: ""}
sources:
  web:
    type: http
    address: 127.0.0.1:0
    format: ndjson
    path_dataset: true
    on_malformed: dlq
  hec:
    type: hec
    address: 127.0.0.1:0
    tokens: ["hec-token"]
  bulk:
    type: elasticsearch_bulk
    address: 127.0.0.1:0
    api_keys: ["vigil:bulk-key"]
processing:
  processors:
    - {type: drop, if: 'level == "debug"'}
sinks:
  archive:
    type: file_archive
    path: %s
    max_age: 200ms
    inputs: ["*"]
`

// TestCountersMatchData runs good, bad and dropped records through three intakes and
// compares every counter with what actually moved: records in the intake stream,
// letters in the dead-letter stream, documents in the archive.
func TestCountersMatchData(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	file := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, countersConfig, dir, archive), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	p, base := start(t, cfg)
	hec := "http://" + p.Sources()["hec"].(*hecsource.Source).Addr()
	bulk := "http://" + p.Sources()["bulk"].(*esbulksource.Source).Addr()

	// web: 3 good, 1 malformed (dead-lettered at intake), 1 dropped by a processor.
	if code, out := post(t, base+"/v1/events/web", "application/x-ndjson",
		"{\"n\":1}\n{\"n\":2}\n{oops\n{\"n\":3}\n{\"n\":4,\"level\":\"debug\"}\n"); code != 200 {
		t.Fatalf("web: %d %v", code, out)
	}
	// hec: 2 events.
	req, _ := http.NewRequest("POST", hec+"/services/collector/event", strings.NewReader(`{"event":{"m":"a"}}{"event":{"m":"b"}}`))
	req.Header.Set("Authorization", "Splunk hec-token")
	if code, body := do(t, req); code != 200 {
		t.Fatalf("hec: %d %s", code, body)
	}
	// bulk: 2 documents and 1 line that is no JSON (dead-lettered at intake).
	req, _ = http.NewRequest("POST", bulk+"/_bulk", strings.NewReader("{\"index\":{\"_index\":\"app\"}}\n{\"m\":\"c\"}\n{\"index\":{\"_index\":\"app\"}}\n{\"m\":\"d\"}\n{\"index\":{\"_index\":\"app\"}}\nnot json\n"))
	req.Header.Set("Authorization", "ApiKey "+base64.StdEncoding.EncodeToString([]byte("vigil:bulk-key")))
	req.Header.Set("Content-Type", "application/x-ndjson")
	if code, body := do(t, req); code != 200 {
		t.Fatalf("bulk: %d %s", code, body)
	}

	const stored, archived = 3 + 1 + 2 + 2, 3 + 2 + 2 // web stores 4 (one is dropped later)
	testutil.Eventually(t, 20*time.Second, "documents archived", func() bool {
		return len(testutil.ArchiveDocs(t, archive)) >= archived
	})
	time.Sleep(500 * time.Millisecond)
	docs := testutil.ArchiveDocs(t, archive)
	if len(docs) != archived {
		t.Fatalf("%d documents archived, want %d", len(docs), archived)
	}

	ctx := context.Background()
	js := p.Stream().JetStream()
	intakeRecords := countRecords(t, ctx, js, stream.IntakeStream)
	letters := countRecords(t, ctx, js, stream.DLQStream)
	sum := func(name string, labels map[string]string) int { return int(counterValue(t, p, name, labels)) }

	if intakeRecords != stored {
		t.Fatalf("intake stream holds %d records, want %d", intakeRecords, stored)
	}
	if got := sum("vigil_sent_events_total", map[string]string{"kind": "source"}); got != intakeRecords {
		t.Errorf("sources' sent = %d, intake stream holds %d records", got, intakeRecords)
	}
	if got := sum("vigil_dead_lettered_total", map[string]string{"kind": "source"}); got != letters || letters != 2 {
		t.Errorf("sources' dead-lettered = %d, DLQ holds %d letters, want 2", got, letters)
	}
	if got := sum("vigil_received_events_total", map[string]string{"kind": "processing"}); got != intakeRecords {
		t.Errorf("processing received %d, intake stream holds %d", got, intakeRecords)
	}
	sent := sum("vigil_sent_events_total", map[string]string{"kind": "processing"})
	discarded := sum("vigil_discarded_total", map[string]string{"kind": "processing"})
	dead := sum("vigil_dead_lettered_total", map[string]string{"kind": "processing"})
	if sent != archived || discarded != 1 || dead != 0 || sent+discarded+dead != intakeRecords {
		t.Errorf("processing: sent %d + discarded %d + dead-lettered %d, want %d + 1 + 0 = %d", sent, discarded, dead, archived, intakeRecords)
	}
	if got := sum("vigil_sent_events_total", map[string]string{"kind": "sink"}); got != len(docs) {
		t.Errorf("archive sent %d, archived %d documents", got, len(docs))
	}
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, resp.Status)
	return resp.StatusCode, b.String()
}

// countRecords adds up the Vigil-Count headers (1 for a message without one) of every
// message in a stream.
func countRecords(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) int {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		c, err := strconv.Atoi(m.Header.Get(wire.HeaderCount))
		if err != nil {
			c = 1
		}
		n += c
	}
	return n
}
