package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestDeliveryCrashOpenSearch kill -9s vigil four times while it delivers to a real
// OpenSearch node (a data stream, op_type create, with the sink's ECS templates) and
// to the file archive, then checks that nothing was lost or doubled: the data
// stream's document count equals its number of distinct event.ids, which equals the
// number of distinct events vigil acknowledged into its stream (the archive's, each
// exactly once), and every event a client got a 200 for is among them. A bulk
// request in flight at the kill is sent again after the restart; its documents
// answer 409 and count as delivered.
func TestDeliveryCrashOpenSearch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil and OpenSearch as processes; skipped with -short")
	}
	node := testutil.StartOpenSearch(t)
	dir := t.TempDir()
	httpAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
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
    type: opensearch
    urls: [%q]
    index: "logs-{event.dataset}-default"
    op_type: create
    install_templates: true
    batch: {max_wait: 200ms, max_events: 200}
    inputs: ["*"]
`, filepath.Join(dir, "data"), adminAddr, httpAddr, node.URL))

	load := startSenders(t, "http://"+httpAddr+"/v1/events/apps", 2, 50, 5*time.Millisecond, "opensearch crash test")
	p := startVigil(t, adminAddr, "-c", cfgPath)
	for k := range 4 {
		time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
		p.kill()
		t.Logf("kill -9 #%d", k+1)
		p = startVigil(t, adminAddr, "-c", cfgPath)
	}
	time.Sleep(300 * time.Millisecond)
	acked := load.Stop()
	if len(acked) == 0 {
		t.Fatal("no event was acknowledged")
	}

	archive := filepath.Join(dir, "data", "archive")
	var docs []searchDoc
	testutil.Eventually(t, 180*time.Second, fmt.Sprintf("all %d acknowledged events in the archive and OpenSearch", len(acked)), func() bool {
		inArchive := map[string]bool{}
		for _, d := range testutil.ArchiveDocs(t, archive) {
			inArchive[fmt.Sprint(d["tid"])] = true
		}
		docs = allDocs(t, node, "logs-delivery-default")
		inStore := map[string]bool{}
		for _, d := range docs {
			inStore[d.TID] = true
		}
		for id := range acked {
			if !inArchive[id] || !inStore[id] {
				return false
			}
		}
		return len(inStore) >= len(inArchive)
	})
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	archiveIDs := map[string]int{}
	for _, d := range testutil.ArchiveDocs(t, archive) {
		archiveIDs[fmt.Sprint(testutil.Field(d, "event.id"))]++
	}
	for id, n := range archiveIDs {
		if n != 1 {
			t.Errorf("archive: event.id %s %d times", id, n)
		}
	}
	docs = allDocs(t, node, "logs-delivery-default")
	storeIDs := map[string]bool{}
	ackedInStore := 0
	for _, d := range docs {
		storeIDs[d.EventID] = true
		if acked[d.TID] {
			ackedInStore++
		}
	}
	total := countDocs(t, node, "logs-delivery-default")
	t.Logf("%d events acknowledged to the clients (%d requests failed or were cut off); vigil accepted %d (archive); OpenSearch holds %d documents, %d distinct event.id",
		len(acked), load.failures.Load(), len(archiveIDs), total, len(storeIDs))
	if total != len(docs) || total != len(storeIDs) {
		t.Errorf("OpenSearch: %d documents (%d read), %d distinct event.id: duplicates", total, len(docs), len(storeIDs))
	}
	if len(storeIDs) != len(archiveIDs) {
		t.Errorf("OpenSearch has %d distinct event.id, vigil acknowledged %d (archive)", len(storeIDs), len(archiveIDs))
	}
	if ackedInStore != len(acked) {
		t.Errorf("OpenSearch holds %d of the %d events acknowledged to the clients", ackedInStore, len(acked))
	}
	if extra := total - len(acked); extra < 0 || int64(extra) > 50*load.failures.Load() {
		t.Errorf("%d documents beyond the acknowledged events; at most %d (50 per failed request) may be there", extra, 50*load.failures.Load())
	}
}

type searchDoc struct {
	TID     string
	EventID string
}

// allDocs reads every document of index (refreshed first), paging in event.id
// order; none while the index does not exist yet.
func allDocs(t *testing.T, node *testutil.OpenSearch, index string) []searchDoc {
	t.Helper()
	if code, _, err := node.Do("POST", "/"+index+"/_refresh", ""); err != nil || code == 404 {
		return nil
	}
	var out []searchDoc
	after := ""
	for {
		q := `{"size":5000,"sort":[{"event.id":"asc"}],"_source":["tid","event.id"]` + after + `}`
		var r struct {
			Hits struct {
				Hits []struct {
					Source struct {
						TID   string `json:"tid"`
						Event struct {
							ID string `json:"id"`
						} `json:"event"`
					} `json:"_source"`
					Sort []any `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(node.MustDo(t, "POST", "/"+index+"/_search", q), &r); err != nil {
			t.Fatal(err)
		}
		hits := r.Hits.Hits
		for _, h := range hits {
			out = append(out, searchDoc{TID: h.Source.TID, EventID: h.Source.Event.ID})
		}
		if len(hits) < 5000 {
			return out
		}
		last, _ := json.Marshal(hits[len(hits)-1].Sort)
		after = `,"search_after":` + string(last)
	}
}

func countDocs(t *testing.T, node *testutil.OpenSearch, index string) int {
	t.Helper()
	var c struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(node.MustDo(t, "GET", "/"+index+"/_count", ""), &c); err != nil {
		t.Fatal(err)
	}
	return c.Count
}
