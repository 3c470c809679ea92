package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestThresholdKill9 kill -9s vigil mid-window, after the threshold rule's
// aggregator has taken in the first failures: on restart (same data directory) it
// waits out the dead run's lease, restores the saved windows, replays the samples
// stored since, and raises the alert exactly once when the rest arrive.
func TestThresholdKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil as a process; skipped with -short")
	}
	dir := t.TempDir()
	httpAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	archive := filepath.Join(dir, "archive")
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`
data_dir: %s
admin: {address: %s}
sources:
  web: {type: http, address: %s, format: json, path_dataset: true}
processing:
  processors:
    - type: threshold
      name: console-brute-force
      if: 'event.action == "ConsoleLogin" && event.outcome == "failure"'
      group_by: [source.ip]
      window: 10m
      condition: "count >= 10"
      level: high
      lease_ttl: 2s
      snapshot_interval: 200ms
sinks:
  archive: {type: file_archive, path: %s, max_age: 200ms, inputs: ["*"]}
`, filepath.Join(dir, "data"), adminAddr, httpAddr, archive))
	at := time.Now().Add(-time.Minute)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			body := fmt.Sprintf(`{"@timestamp":%q,"event":{"action":"ConsoleLogin","outcome":"failure"},"source":{"ip":"198.51.100.9"}}`,
				at.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano))
			resp, err := http.Post("http://"+httpAddr+"/v1/events/aws.cloudtrail", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	alerts := func() int {
		n := 0
		for _, d := range testutil.ArchiveDocs(t, archive) {
			if testutil.Field(d, "event.kind") == "alert" {
				n++
			}
		}
		return n
	}

	p := startVigil(t, adminAddr, "-c", cfgPath)
	send(0, 6)
	testutil.Eventually(t, 30*time.Second, "6 events archived", func() bool { return len(testutil.ArchiveDocs(t, archive)) >= 6 })
	time.Sleep(time.Second) // several snapshots
	p.kill()

	p = startVigil(t, adminAddr, "-c", cfgPath)
	send(6, 12)
	testutil.Eventually(t, 30*time.Second, "an alert", func() bool { return alerts() >= 1 })
	time.Sleep(2 * time.Second)
	if n := alerts(); n != 1 {
		t.Fatalf("%d alerts, want exactly 1", n)
	}
	if err := p.terminate(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}
