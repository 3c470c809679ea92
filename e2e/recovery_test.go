package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestRecoveryAfterKillIsFast: with the default buffer and archive settings (ack_wait
// 60 s, archive max_age 10 s), after three kill -9 under load every acknowledged
// event is archived well before ack_wait: within recoveryBound of the last restart
// (about 12 s on a quiet machine; the bound leaves room for a machine loaded by
// other tests). Without handing out at once what a crashed run had taken, part of
// them would wait until ack_wait (60 s) after the kill.
func TestRecoveryAfterKillIsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs vigil as a process; skipped with -short")
	}
	dir := t.TempDir()
	httpAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`
data_dir: %s
admin: {address: %s}
sources:
  apps:
    type: http
    address: %s
    format: ndjson
    dataset: recovery
sinks:
  archive:
    type: file_archive
    inputs: ["*"]
`, filepath.Join(dir, "data"), adminAddr, httpAddr))

	load := startSenders(t, "http://"+httpAddr+"/v1/events/apps", 2, 50, 0, "recovery test")
	p := startVigil(t, adminAddr, "-c", cfgPath)
	for range 3 {
		time.Sleep(3 * time.Second)
		p.kill()
		p = startVigil(t, adminAddr, "-c", cfgPath)
	}
	restarted := time.Now()
	acked := load.Stop()
	want := len(acked)
	if want == 0 {
		t.Fatal("no event was acknowledged")
	}
	archive := filepath.Join(dir, "data", "archive")
	const recoveryBound = 40 * time.Second
	missing := want
	for time.Since(restarted) < recoveryBound && missing > 0 {
		time.Sleep(250 * time.Millisecond)
		found := map[string]bool{}
		for _, d := range testutil.ArchiveDocs(t, archive) {
			found[fmt.Sprint(d["tid"])] = true
		}
		missing = 0
		for id := range acked {
			if !found[id] {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events not archived %s after the last restart", missing, want, recoveryBound)
	}
	t.Logf("%d acknowledged events all archived %s after the last restart", want, time.Since(restarted).Round(100*time.Millisecond))
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
