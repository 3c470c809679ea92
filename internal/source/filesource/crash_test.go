package filesource

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-sec/vigil/internal/component"
	vtest "github.com/vigil-sec/vigil/internal/testutil"
)

// These tests replay, step by step, the sequences around a copytruncate rotation and a
// stop or kill -9 that made e2e/file_crash_test.go find lines stored twice. The intake
// drops a batch whose ID it stored already, as the intake stream does within its
// duplicate window: a line re-read and stored again under the same ID is fine, the
// same line under another ID is a duplicate.

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCopyFoundAfterRestartResumesWhereOriginalStopped: the source sees the original's
// truncation, then stops (or is killed) before it finds the copy; after the restart the
// copy is read from where reading of the original stopped, not from its beginning.
func TestCopyFoundAfterRestartResumesWhereOriginalStopped(t *testing.T) {
	h := newHarness(t)
	h.in.dedupe = true
	cfg := testCfg(h.dir)
	cfg.BatchMaxLines = 10
	h.start(cfg, false)
	// Read in three polls: batches cut where the file ended then, not every 10 lines.
	for i := range 3 {
		appendLines(t, h.path("app.log"), numbered("a", 7*i, 7*i+7)...)
		h.waitExactly(numbered("a", 0, 7*i+7))
	}
	// copytruncate: the copy is made where the scan does not see it yet (it is
	// renamed into the globs below); the truncation is seen.
	hold := filepath.Join(h.dir, "hold")
	if err := os.Mkdir(hold, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, h.path("app.log"), filepath.Join(hold, "app.log.1"))
	if err := os.Truncate(h.path("app.log"), 0); err != nil {
		t.Fatal(err)
	}
	vtest.Eventually(t, 5*time.Second, "truncation seen", func() bool {
		return testutil.ToFloat64(h.metrics.FileRotations.WithLabelValues("source", "logs", "truncate")) == 1
	})
	h.stop()
	if err := os.Rename(filepath.Join(hold, "app.log.1"), h.path("app.log.1")); err != nil {
		t.Fatal(err)
	}
	appendLines(t, h.path("app.log"), numbered("b", 0, 5)...)
	h.start(cfg, false)
	h.waitExactly(append(numbered("a", 0, 21), numbered("b", 0, 5)...))
	vtest.Eventually(t, 5*time.Second, "copy placed", func() bool {
		return testutil.ToFloat64(h.metrics.FileRotations.WithLabelValues("source", "logs", "copy")) == 1
	})
	h.waitExactly(append(numbered("a", 0, 21), numbered("b", 0, 5)...))
}

// TestPendingRangeCarriedToCopy: killed while a batch of the live file was being
// stored (the checkpoint names the batch's range, the stream has stored it but not
// answered); the file is then rotated by copytruncate after the restart found it but
// before the range was stored again. The copy must store that range exactly as before
// (same cut, same ID), and the restarted source must keep naming the range in its
// checkpoint until it stored it again.
func TestPendingRangeCarriedToCopy(t *testing.T) {
	h := newHarness(t)
	h.in.dedupe = true
	live := h.path("app.log.x") // polled after app.log (glob order)
	other := h.path("app.log")  // its store is where the rotation happens
	copied := h.path("app.log.x.1")
	cfg := testCfg(h.dir)
	cfg.BatchMaxLines = 10
	appendLines(t, live, numbered("a", 0, 12)...) // batches: lines 0-9, 10-11
	appendLines(t, other, numbered("b", 0, 3)...)
	h.start(cfg, false)
	h.waitExactly(append(numbered("a", 0, 12), numbered("b", 0, 3)...))
	h.stop()

	// As if killed while storing lines 10-11 of the live file, after the stream stored
	// them: the checkpoint is at line 10 and names the range up to line 12.
	lineLen := int64(len(numbered("a", 0, 1)[0]) + 1)
	st := newStore(filepath.Join(h.data, "sources", "logs"))
	cps, _, err := st.load()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range cps {
		if cps[i].Path == live {
			cps[i].Offset, cps[i].Pending = 10*lineLen, 12*lineLen
			found = true
		}
	}
	if !found {
		t.Fatalf("no checkpoint of %s in %+v", live, cps)
	}
	if err := st.save(cps); err != nil {
		t.Fatal(err)
	}
	// While Vigil is down the server writes on.
	appendLines(t, live, numbered("a", 12, 32)...)
	appendLines(t, other, numbered("b", 3, 6)...)

	var once sync.Once
	var pendingAtRestart int64 = -1
	h.in.hook = func(r component.Records) {
		if len(r.Records) == 0 || !strings.HasPrefix(string(r.Records[0]), "b-") {
			return
		}
		once.Do(func() {
			cps, _, err := newStore(filepath.Join(h.data, "sources", "logs")).load()
			if err == nil {
				for _, c := range cps {
					if cuts := c.cuts(); c.Path == live && len(cuts) > 0 {
						pendingAtRestart = cuts[0]
					}
				}
			}
			// copytruncate of the live file, before the restarted source read it.
			copyFile(t, live, copied)
			if err := os.Truncate(live, 0); err != nil {
				t.Error(err)
			}
			appendLines(t, live, numbered("c", 0, 5)...)
		})
	}
	h.start(cfg, false)
	want := append(append(numbered("a", 0, 32), numbered("b", 0, 6)...), numbered("c", 0, 5)...)
	h.waitExactly(want)
	vtest.Eventually(t, 5*time.Second, "copy placed", func() bool {
		return testutil.ToFloat64(h.metrics.FileRotations.WithLabelValues("source", "logs", "copy")) == 1
	})
	h.waitExactly(want)
	if pendingAtRestart != 12*lineLen {
		t.Errorf("checkpoint of the live file before its range was stored again: pending %d, want %d", pendingAtRestart, 12*lineLen)
	}
}

// TestCrashReplaysEveryCut: killed after batches 2-4 were stored but before a
// checkpoint past them was written (the checkpoint is at batch 1's end and names
// their ends). After the restart, with other batch limits, each is cut where it was
// and stored under its ID again, which the stream drops.
func TestCrashReplaysEveryCut(t *testing.T) {
	h := newHarness(t)
	h.in.dedupe = true
	cfg := testCfg(h.dir)
	cfg.BatchMaxLines = 10
	h.start(cfg, false)
	// Batches cut where the file ended at each poll: 3, 5, 4, 6 lines.
	var ends []int64
	n := 0
	lineLen := int64(len(numbered("a", 0, 1)[0]) + 1)
	for _, k := range []int{3, 5, 4, 6} {
		appendLines(t, h.path("app.log"), numbered("a", n, n+k)...)
		n += k
		h.waitExactly(numbered("a", 0, n))
		ends = append(ends, int64(n)*lineLen)
	}
	h.stop()
	st := newStore(filepath.Join(h.data, "sources", "logs"))
	cps, _, err := st.load()
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints %+v: %v", cps, err)
	}
	cps[0].Offset, cps[0].Cuts = ends[0], ends[1:]
	if err := st.save(cps); err != nil {
		t.Fatal(err)
	}
	h.in.mu.Lock()
	stored := len(h.in.ids)
	h.in.mu.Unlock()
	appendLines(t, h.path("app.log"), numbered("a", n, n+20)...)
	cfg.BatchMaxLines = 7
	h.start(cfg, false)
	h.waitExactly(numbered("a", 0, n+20))
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	if got := len(h.in.ids) - stored; got != 3 {
		t.Errorf("%d new batches after the restart (20 lines, at most 7 a batch), want 3: %v", got, h.in.ids[stored:])
	}
}

// TestCheckpointNamesEveryBatchInStore checks, at every Store call while a backlog is
// read through the pipeline, what a kill -9 at that moment would leave on disk: the
// checkpoint's offset is not past any line not yet stored, and it names the end of
// the batch being stored, so that the batch is cut and named the same after a restart.
func TestCheckpointNamesEveryBatchInStore(t *testing.T) {
	h := newHarness(t)
	cfg := testCfg(h.dir)
	cfg.BatchMaxLines = 10
	lines := numbered("a", 0, 500)
	appendLines(t, h.path("app.log"), lines...)
	lineLen := int64(len(lines[0]) + 1)
	st := newStore(filepath.Join(h.data, "sources", "logs"))
	var mu sync.Mutex
	calls := 0
	h.in.hook = func(r component.Records) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		h.in.mu.Lock()
		storedLines := int64(len(h.in.recs))
		h.in.mu.Unlock()
		cps, _, err := st.load()
		if err != nil || len(cps) != 1 {
			t.Errorf("store %d: checkpoints %+v: %v", calls, cps, err)
			return
		}
		c := cps[0]
		end := storedLines*lineLen + int64(len(r.Records))*lineLen
		if c.Offset > storedLines*lineLen {
			t.Errorf("store %d: checkpoint offset %d past the %d lines stored", calls, c.Offset, storedLines)
		}
		if !slices.Contains(c.cuts(), end) {
			t.Errorf("store %d: checkpoint %+v does not name the end %d of the batch being stored", calls, c, end)
		}
	}
	h.start(cfg, false)
	h.waitExactly(lines)
	if calls != 50 {
		t.Errorf("%d stores, want 50", calls)
	}
}
