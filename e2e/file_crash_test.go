package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestFileSourceCrashDuringRotation follows a real Apache's access log with the file
// source while the log is rotated over and over (rename + graceful restart, and
// copytruncate), kill -9s vigil at random moments, and then finds every request
// exactly once in the archive: nothing lost, and no line stored twice although vigil
// re-reads from its checkpoint after each kill.
func TestFileSourceCrashDuringRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs vigil as a process; skipped with -short")
	}
	a := testutil.StartApache(t)
	dir := t.TempDir()
	adminAddr := testutil.FreeAddr(t)
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`
data_dir: %s
admin: {address: %s}
buffer:
  type: embedded
  ack_wait: 3s
sources:
  apache:
    type: file
    paths: [%q]
    exclude: ["*.gz"]
    start_at: beginning
    format: apache
    scan_interval: 100ms
    poll_interval: 20ms
    batch_max_lines: 50
sinks:
  archive:
    type: file_archive
    max_age: 300ms
    inputs: ["*"]
`, filepath.Join(dir, "data"), adminAddr, filepath.Join(a.Dir, "access.log*")))

	var (
		rot     sync.Mutex // held by copytruncate: requests between copy and truncate would be lost by it
		sent    atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		rotated atomic.Int64
	)
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			rot.Lock()
			err := a.Get(fmt.Sprintf("/req/%d", n))
			rot.Unlock()
			if err != nil {
				t.Errorf("request %d: %v", n, err)
				return
			}
			sent.Store(int64(n + 1))
			time.Sleep(time.Millisecond)
		}
	})
	wg.Go(func() {
		for k := 1; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(200+rand.IntN(300)) * time.Millisecond):
			}
			dst := fmt.Sprintf("%s.%d", a.Log(), k)
			if k%2 == 0 {
				rot.Lock()
				// httpd logs a request after answering it: let the last one land, or
				// copytruncate loses it (its known gap between copy and truncate).
				time.Sleep(20 * time.Millisecond)
				err := a.CopyTruncate(dst)
				rot.Unlock()
				if err != nil {
					t.Errorf("copytruncate: %v", err)
					return
				}
			} else {
				if err := os.Rename(a.Log(), dst); err != nil {
					t.Errorf("rename: %v", err)
					return
				}
				if err := a.Graceful(); err != nil {
					t.Error(err)
					return
				}
			}
			rotated.Add(1)
		}
	})

	p := startVigil(t, adminAddr, "-c", cfgPath)
	const kills = 5
	for k := range kills {
		time.Sleep(time.Duration(700+rand.IntN(1000)) * time.Millisecond)
		p.kill()
		t.Logf("kill -9 #%d after %d requests and %d rotations", k+1, sent.Load(), rotated.Load())
		p = startVigil(t, adminAddr, "-c", cfgPath)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	n := int(sent.Load())
	t.Logf("%d requests, %d rotations", n, rotated.Load())

	archive := filepath.Join(dir, "data", "archive")
	var count map[string]int
	deadline := time.Now().Add(60 * time.Second)
	var missed []int
	for {
		count = map[string]int{}
		for _, d := range testutil.ArchiveDocs(t, archive) {
			count[fmt.Sprint(testutil.Field(d, "url.original"))]++
		}
		missed = missed[:0]
		for i := range n {
			if count[fmt.Sprintf("/req/%d", i)] == 0 {
				missed = append(missed, i)
			}
		}
		if len(missed) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(missed) > 0 {
		t.Errorf("%d of %d requests missing from the archive, e.g. %v", len(missed), n, missed[:min(len(missed), 40)])
		// Where httpd wrote them (nowhere: lost by copytruncate itself).
		files, _ := filepath.Glob(filepath.Join(a.Dir, "access.log*"))
		for _, m := range missed[:min(len(missed), 5)] {
			var in []string
			for _, f := range files {
				b, _ := os.ReadFile(f)
				if strings.Contains(string(b), fmt.Sprintf("/req/%d ", m)) {
					in = append(in, filepath.Base(f))
				}
			}
			t.Logf("/req/%d is in %v", m, in)
		}
	}
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	count = map[string]int{}
	for _, d := range testutil.ArchiveDocs(t, archive) {
		count[fmt.Sprint(testutil.Field(d, "url.original"))]++
	}
	dups := 0
	for url, c := range count {
		if c > 1 && strings.HasPrefix(url, "/req/") {
			dups += c - 1
			if dups < 10 {
				t.Errorf("%s archived %d times", url, c)
			}
		}
	}
	if dups > 0 {
		t.Errorf("%d duplicate requests in the archive", dups)
	}
}
