package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestRecoveryAfterKillIsFast: with the default buffer and archive settings (ack_wait
// 60 s, archive max_age 10 s), after three kill -9 under load every acknowledged
// event is archived within 15 s of the last restart. Without handing out at once what
// a crashed run had taken, part of them would wait for ack_wait.
func TestRecoveryAfterKillIsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs vigil as a process; skipped with -short")
	}
	dir := t.TempDir()
	httpAddr, adminAddr := freePort(t), freePort(t)
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
					fmt.Fprintf(&body, "{\"tid\":%q}\n", id)
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
			}
		})
	}
	p := startVigil(t, adminAddr, "-c", cfgPath)
	for range 3 {
		time.Sleep(3 * time.Second)
		p.kill()
		p = startVigil(t, adminAddr, "-c", cfgPath)
	}
	restarted := time.Now()
	close(stop)
	wg.Wait()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want == 0 {
		t.Fatal("no event was acknowledged")
	}
	archive := filepath.Join(dir, "data", "archive")
	missing := want
	for time.Since(restarted) < 15*time.Second && missing > 0 {
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
		t.Fatalf("%d of %d acknowledged events not archived 15 s after the last restart", missing, want)
	}
	t.Logf("%d acknowledged events all archived %s after the last restart", want, time.Since(restarted).Round(100*time.Millisecond))
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
