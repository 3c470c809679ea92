package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestDeliveryCrash kill -9s vigil four times while it delivers to the file archive, to
// S3 (versitygw, a real process) and to an Elasticsearch-compatible store
// (VictoriaLogs, a real process), then checks that every acknowledged event reached all
// three. The archive and S3 must hold each event exactly once (by event.id), and
// VictoriaLogs must hold every event.id. A bulk request in flight when the process dies
// is sent again after the restart: Elasticsearch overwrites it by _id (= event.id), so
// it stays one document, but VictoriaLogs ignores _id and keeps a second row; those
// rows are counted and logged, not failed on.
func TestDeliveryCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil and VictoriaLogs as processes; skipped with -short")
	}
	vl := testutil.StartVictoriaLogs(t)
	gw := testutil.StartS3Gateway(t)
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
    type: elasticsearch
    urls: [%q]
    index: "logs-{event.dataset}"
    batch: {max_wait: 200ms}
    inputs: ["*"]
  lake:
    type: s3
    bucket: %s
    endpoint: %s
    access_key_id: %s
    secret_access_key: %s
    max_age: 500ms
    inputs: ["*"]
`, filepath.Join(dir, "data"), adminAddr, httpAddr, vl.BulkURL(), testutil.S3Bucket, gw.Endpoint(), testutil.S3AccessKey, testutil.S3Secret))

	load := startSenders(t, "http://"+httpAddr+"/v1/events/apps", 2, 50, 5*time.Millisecond, "delivery crash test")
	p := startVigil(t, adminAddr, "-c", cfgPath)
	for k := range 4 {
		time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
		p.kill()
		t.Logf("kill -9 #%d", k+1)
		p = startVigil(t, adminAddr, "-c", cfgPath)
	}
	time.Sleep(300 * time.Millisecond)
	acked := load.Stop()
	want := len(acked)
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
		inS3 := map[string]bool{}
		for _, d := range gw.NDJSONDocs(t) {
			inS3[fmt.Sprint(d["tid"])] = true
		}
		for id := range acked {
			if !inArchive[id] || !inStore[id] || !inS3[id] {
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
	s3IDs := map[string]int{}
	for _, d := range gw.NDJSONDocs(t) {
		s3IDs[fmt.Sprint(testutil.Field(d, "event.id"))]++
	}
	s3Dups := 0
	for _, n := range s3IDs {
		s3Dups += n - 1
	}
	t.Logf("%d events acknowledged; archive %d documents, %d duplicates; S3 %d documents, %d duplicates; VictoriaLogs %d distinct event.id, %d rows sent twice",
		want, len(archiveIDs), dups, len(s3IDs), s3Dups, len(storeIDs), resent)
	if s3Dups != 0 {
		t.Errorf("S3: %d duplicate documents by event.id", s3Dups)
	}
	if len(s3IDs) != len(archiveIDs) {
		t.Errorf("S3 has %d distinct event.id, the archive %d", len(s3IDs), len(archiveIDs))
	}
	if len(storeIDs) != len(archiveIDs) {
		t.Errorf("VictoriaLogs has %d distinct event.id, the archive %d", len(storeIDs), len(archiveIDs))
	}
}
