package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestSeed003 runs examples/seed-003-csoc.yaml as it is shipped, with its variables
// pointing at test servers: CloudWatch Logs subscription payloads delivered by Firehose
// reach the Elasticsearch-compatible store (VictoriaLogs) and the S3 archive
// (versitygw), and slow responses raise one alert that arrives in Slack (a local server
// that follows Slack's incoming-webhook contract).
func TestSeed003(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil, VictoriaLogs and versitygw as processes; skipped with -short")
	}
	vl := testutil.StartVictoriaLogs(t)
	gw := testutil.StartS3Gateway(t)
	var (
		mu     sync.Mutex
		alerts []map[string]any
	)
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg map[string]any
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &msg) != nil || msg["text"] == nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "invalid_payload")
			return
		}
		mu.Lock()
		alerts = append(alerts, msg)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	defer slack.Close()

	dir := t.TempDir()
	firehoseAddr, adminAddr := freePort(t), freePort(t)
	cfg, err := os.ReadFile(filepath.Join("..", "examples", "seed-003-csoc.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The shipped file, plus a loopback admin address for startVigil.
	cfgPath := writeConfig(t, dir, string(cfg)+fmt.Sprintf("admin: {address: %s}\n", adminAddr))
	for k, v := range map[string]string{
		"VIGIL_DATA_DIR": filepath.Join(dir, "data"), "FIREHOSE_ADDRESS": firehoseAddr,
		"FIREHOSE_ACCESS_KEY": "seed-003-firehose-key", "ES_URL": vl.BulkURL(),
		"ARCHIVE_BUCKET": testutil.S3Bucket, "S3_ENDPOINT": gw.Endpoint(), "SLACK_WEBHOOK_URL": slack.URL + "/services/T0/B0/x",
		"AWS_ACCESS_KEY_ID": testutil.S3AccessKey, "AWS_SECRET_ACCESS_KEY": testutil.S3Secret, "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	p := startVigil(t, adminAddr, "-c", cfgPath)

	// Two commons accounts' log groups: fast.example answers in 0.2 s, slow.example
	// in 2.5–3.4 s (its p95 is above 2 s).
	now := time.Now().UnixMilli()
	var records []map[string]string
	want := 0
	for acct, domain := range map[string]string{"111111111111": "fast.example", "222222222222": "slow.example"} {
		var events []map[string]any
		for i := range 10 {
			rt := 0.2
			if domain == "slow.example" {
				rt = 2.5 + float64(i)/10
			}
			msg, _ := json.Marshal(map[string]any{"url": map[string]any{"domain": domain}, "http": map[string]any{"response": map[string]any{"time": rt}}})
			events = append(events, map[string]any{"id": fmt.Sprintf("%s-%d", acct, i), "timestamp": now + int64(i), "message": string(msg)})
		}
		want += len(events)
		payload, _ := json.Marshal(map[string]any{"messageType": "DATA_MESSAGE", "owner": acct, "logGroup": "/commons/app",
			"logStream": "vm-1", "subscriptionFilters": []string{"csoc"}, "logEvents": events})
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(payload)
		_ = zw.Close()
		records = append(records, map[string]string{"data": base64.StdEncoding.EncodeToString(gz.Bytes())})
	}
	body, _ := json.Marshal(map[string]any{"requestId": "seed-003", "timestamp": now, "records": records})
	req, _ := http.NewRequest(http.MethodPost, "http://"+firehoseAddr+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amz-Firehose-Access-Key", "seed-003-firehose-key")
	req.Header.Set("X-Amz-Firehose-Request-Id", "seed-003")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("firehose: %d %s", resp.StatusCode, answer)
	}

	testutil.Eventually(t, 60*time.Second, "the slow-responses alert in Slack", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(alerts) > 0
	})
	var n, inS3 int
	deadline := time.Now().Add(100 * time.Second) // the S3 sink closes an object after max_age, 60 s by default
	for {
		ids := vl.CountByID(t)
		inS3 = 0
		for _, d := range gw.NDJSONDocs(t) {
			if testutil.Field(d, "event.dataset") == "aws.cloudwatch_logs" {
				inS3++
			}
		}
		n = 0
		for id := range ids {
			if strings.HasPrefix(id, "111111111111-") || strings.HasPrefix(id, "222222222222-") {
				n++
			}
		}
		if n == want && inS3 == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 100 s: %d of %d log events in the search store (ids %v), %d in the archive", n, want, ids, inS3)
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a second alert for the same window would have come by now
	mu.Lock()
	defer mu.Unlock()
	if len(alerts) != 1 || !strings.Contains(fmt.Sprint(alerts[0]), "slow-responses") || !strings.Contains(fmt.Sprint(alerts[0]), "slow.example") {
		t.Fatalf("want one slow-responses alert about slow.example in Slack, got %d: %v", len(alerts), alerts)
	}
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
