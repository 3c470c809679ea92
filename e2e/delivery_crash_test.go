package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestDeliveryCrash kill -9s vigil several times while it delivers to an archive and
// to an Elasticsearch-compatible store (VictoriaLogs, a real process), then checks
// that every acknowledged event reached both, and counts duplicates. The archive must
// hold each event exactly once. Elasticsearch overwrites a re-sent document by its
// _id (= event.id); VictoriaLogs ignores _id, so a batch re-sent after a crash shows
// there as a second row with the same event.id: those rows are counted and reported,
// and every event.id must be present.
func TestDeliveryCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil and VictoriaLogs as processes; skipped with -short")
	}
	vl := testutil.StartVictoriaLogs(t)
	dir := t.TempDir()
	httpAddr, adminAddr := freePort(t), freePort(t)
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`
data_dir: %s
admin: {address: %s}
buffer: {ack_wait: 20s}
sources:
  apps:
    type: http
    address: %s
    format: ndjson
    dataset: delivery
sinks:
  archive:
    type: file_archive
    max_age: 300ms
    inputs: ["*"]
  search:
    type: elasticsearch
    urls: [%q]
    index: "logs-{event.dataset}"
    batch: {max_wait: 200ms}
    inputs: ["*"]
`, filepath.Join(dir, "data"), adminAddr, httpAddr, vl.BulkURL()))

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for c := range 2 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var body bytes.Buffer
				ids := make([]string, 0, 50)
				for i := range 50 {
					id := fmt.Sprintf("c%d-r%d-e%d", c, n, i)
					ids = append(ids, id)
					fmt.Fprintf(&body, "{\"tid\":%q,\"message\":\"delivery crash test\"}\n", id)
				}
				resp, err := client.Post("http://"+httpAddr+"/v1/events/apps", "application/x-ndjson", &body)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				var out map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	p := startVigil(t, adminAddr, "-c", cfgPath)
	kills := 4
	if os.Getenv("VIGIL_E2E_KILLS") == "0" {
		kills = 0
		time.Sleep(4 * time.Second)
	}
	for k := range kills {
		time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
		p.kill()
		t.Logf("kill -9 #%d", k+1)
		p = startVigil(t, adminAddr, "-c", cfgPath)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want == 0 {
		t.Fatal("no event was acknowledged")
	}

	archive := filepath.Join(dir, "data", "archive")
	var rows []map[string]string
	testutil.Eventually(t, 120*time.Second, fmt.Sprintf("all %d acknowledged events in the archive and VictoriaLogs", want), func() bool {
		docs := testutil.ArchiveDocs(t, archive)
		inArchive := map[string]bool{}
		for _, d := range docs {
			inArchive[fmt.Sprint(d["tid"])] = true
		}
		rows = vl.Rows(t)
		inStore := map[string]bool{}
		for _, r := range rows {
			inStore[r["tid"]] = true
		}
		for id := range acked {
			if !inArchive[id] || !inStore[id] {
				return false
			}
		}
		return true
	})
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	archiveIDs := map[string]int{}
	for _, d := range testutil.ArchiveDocs(t, archive) {
		archiveIDs[fmt.Sprint(testutil.Field(d, "event.id"))]++
	}
	dups := 0
	for _, n := range archiveIDs {
		dups += n - 1
	}
	if dups != 0 {
		t.Errorf("archive: %d duplicate documents by event.id", dups)
	}
	storeIDs := map[string]int{}
	for _, r := range vl.Rows(t) {
		storeIDs[r["event.id"]]++
	}
	resent := 0
	for _, n := range storeIDs {
		resent += n - 1
	}
	t.Logf("%d events acknowledged; archive %d documents, 0 duplicates; VictoriaLogs %d distinct event.id, %d rows re-sent after a crash (one document each under Elasticsearch's _id)",
		want, len(archiveIDs), len(storeIDs), resent)
	if len(storeIDs) != len(archiveIDs) {
		t.Errorf("VictoriaLogs has %d distinct event.id, the archive %d", len(storeIDs), len(archiveIDs))
	}
}
