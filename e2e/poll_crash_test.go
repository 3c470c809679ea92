package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestPollCrashMidPagination runs vigil as a process with a poll source paging
// through an Okta-like System Log API (20 events a page, rate-limited now and
// then), kill -9s it several times while it is in the middle of the pagination, and
// checks that after the last restart every event is in the archive exactly once
// (counted by the event's uuid): no page lost, none stored twice.
func TestPollCrashMidPagination(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs vigil as a process; skipped with -short")
	}
	api := testutil.StartOktaSystemLog(t, "crash-token")
	api.SetDelay(15 * time.Millisecond)
	api.SetLimitEvery(9)
	start := time.Now().Add(-2 * time.Hour)
	var evs []testutil.AuditEvent
	for i := range 4000 {
		evs = append(evs, testutil.AuditEvent{ID: fmt.Sprintf("ev-%05d", i), Time: start.Add(time.Duration(i/2) * time.Second)})
	}
	api.Add(evs...)

	dir := t.TempDir()
	adminAddr := testutil.FreeAddr(t)
	t.Setenv("CRASH_OKTA_TOKEN", "crash-token")
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`
data_dir: %s
admin: {address: %s}
buffer:
  type: embedded
  ack_wait: 3s
sources:
  okta:
    type: poll
    url: "%s/api/v1/logs?since={cursor}&limit=20"
    interval: 1s
    headers:
      Authorization: "SSWS ${CRASH_OKTA_TOKEN}"
    records: "$"
    id_path: "$.uuid"
    cursor: {from: "$.published", initial: "2020-01-01T00:00:00Z", overlap: 30s}
    pagination: {type: link}
    max_pages: 1000
    retry_backoff: 50ms
    format: json
    dataset: okta.system
sinks:
  archive:
    type: file_archive
    max_age: 300ms
    inputs: ["*"]
`, filepath.Join(dir, "data"), adminAddr, api.URL))

	p := startVigil(t, adminAddr, "-c", cfgPath)
	const kills = 4
	lastKill := 0
	for k := range kills {
		time.Sleep(time.Duration(400+rand.IntN(800)) * time.Millisecond)
		reqs, _ := api.Counts()
		lastKill = reqs
		p.kill()
		t.Logf("kill -9 #%d after %d API requests", k+1, reqs)
		if k == 1 {
			// Newer events arrive while vigil is down.
			var late []testutil.AuditEvent
			for i := range 100 {
				late = append(late, testutil.AuditEvent{ID: fmt.Sprintf("late-%03d", i), Time: time.Now().Add(-time.Minute)})
			}
			api.Add(late...)
		}
		p = startVigil(t, adminAddr, "-c", cfgPath)
	}
	// 4000 events are 200 pages: kills after that many requests missed the pagination.
	if lastKill >= 200 {
		t.Logf("the last kill came after %d requests, after the first pagination: the test checked less than it should", lastKill)
	}

	archive := filepath.Join(dir, "data", "archive")
	const want = 4100
	var byID map[string]int
	testutil.Eventually(t, 120*time.Second, fmt.Sprintf("%d events in the archive", want), func() bool {
		byID = map[string]int{}
		for _, d := range testutil.ArchiveDocs(t, archive) {
			byID[fmt.Sprint(d["uuid"])]++
		}
		return len(byID) >= want
	})
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	byID = map[string]int{}
	docs := testutil.ArchiveDocs(t, archive)
	for _, d := range docs {
		byID[fmt.Sprint(d["uuid"])]++
	}
	dups := 0
	for _, n := range byID {
		dups += n - 1
	}
	reqs, limited := api.Counts()
	t.Logf("%d API requests (%d rate-limited); archive: %d documents, %d distinct uuids, %d duplicates", reqs, limited, len(docs), len(byID), dups)
	if len(byID) != want {
		t.Errorf("%d distinct events archived, want %d", len(byID), want)
	}
	if dups != 0 {
		t.Errorf("%d events archived twice", dups)
	}
}
