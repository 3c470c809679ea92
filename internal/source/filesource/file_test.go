package filesource

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-sec/vigil/internal/component"
	vtest "github.com/vigil-sec/vigil/internal/testutil"
)

// fakeIntake records what was stored; fail makes Store fail while it returns true.
// With dedupe it acts as the intake stream does within its duplicate window: a batch
// whose ID it stored already is acknowledged and not stored again. hook, when set,
// runs at the start of each Store (outside the lock).
type fakeIntake struct {
	mu      sync.Mutex
	recs    []string
	ids     []string
	letters []component.Letter
	fail    func() bool
	dedupe  bool
	seen    map[string]bool
	hook    func(component.Records)
}

func (f *fakeIntake) Store(_ context.Context, r component.Records) error {
	if f.hook != nil {
		f.hook(r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil && f.fail() {
		return component.ErrUnavailable
	}
	if f.dedupe {
		if f.seen[r.ID] {
			return nil
		}
		if f.seen == nil {
			f.seen = map[string]bool{}
		}
		f.seen[r.ID] = true
	}
	for _, b := range r.Records {
		f.recs = append(f.recs, string(b))
	}
	f.ids = append(f.ids, r.ID)
	return nil
}

func (f *fakeIntake) DeadLetter(_ context.Context, l ...component.Letter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.letters = append(f.letters, l...)
	return nil
}

func (f *fakeIntake) stored() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.recs)
}

type harness struct {
	t       *testing.T
	dir     string // the logs
	data    string // DataDir
	in      *fakeIntake
	metrics *component.Metrics
	src     *Source
}

func testCfg(dir string) *Config {
	c := NewConfig()
	c.Paths = []string{filepath.Join(dir, "app.log*")}
	c.StartAt = "beginning"
	c.ScanInterval = 20 * time.Millisecond
	c.PollInterval = 5 * time.Millisecond
	return c
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, dir: t.TempDir(), data: t.TempDir(), in: &fakeIntake{}}
}

func (h *harness) start(cfg *Config, whole bool) {
	h.t.Helper()
	if err := cfg.Validate(); err != nil {
		h.t.Fatal(err)
	}
	h.metrics = component.NewMetrics(prometheus.NewRegistry())
	src, err := New(cfg, component.SourceDeps{Name: "logs", Intake: h.in, Metrics: h.metrics, DataDir: h.data, WholeRecords: whole, Log: testLog(h.t)})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := src.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.src = src
	h.t.Cleanup(func() { h.stop() })
}

func (h *harness) stop() {
	if h.src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.src.Stop(ctx); err != nil {
		h.t.Error(err)
	}
	h.src = nil
}

func (h *harness) path(name string) string { return filepath.Join(h.dir, name) }

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// numbered returns lines prefix-from … prefix-(to-1), padded so that a few of them
// fill the fingerprint.
func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%05d %s", prefix, i, strings.Repeat("x", 60)))
	}
	return out
}

// waitExactly waits until the stored records are exactly want, in any order.
func (h *harness) waitExactly(want []string) {
	h.t.Helper()
	var got []string
	vVOK := func() bool {
		got = h.in.stored()
		return len(got) >= len(want)
	}
	vtest.Eventually(h.t, 10*time.Second, fmt.Sprintf("%d records", len(want)), vVOK)
	// Give a duplicate the chance to show.
	time.Sleep(100 * time.Millisecond)
	got = h.in.stored()
	checkExactlyOnce(h.t, got, want)
}

func checkExactlyOnce(t *testing.T, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	missing, dups, extra := 0, 0, 0
	for _, w := range want {
		switch n := count[w]; {
		case n == 0:
			missing++
			if missing < 5 {
				t.Errorf("missing %q", w)
			}
		case n > 1:
			dups++
			if dups < 5 {
				t.Errorf("%d times: %q", n, w)
			}
		}
		delete(count, w)
	}
	for g := range count {
		extra++
		if extra < 5 {
			t.Errorf("unexpected record %q", g)
		}
	}
	if missing+dups+extra > 0 {
		t.Fatalf("%d records: %d missing, %d duplicated, %d unexpected", len(got), missing, dups, extra)
	}
}

func TestFollowsAppends(t *testing.T) {
	h := newHarness(t)
	appendLines(t, h.path("app.log"), numbered("a", 0, 10)...)
	h.start(testCfg(h.dir), false)
	appendLines(t, h.path("app.log"), numbered("a", 10, 20)...)
	h.waitExactly(numbered("a", 0, 20))
	if got := testutil.ToFloat64(h.metrics.FilesWatched.WithLabelValues("source", "logs")); got != 1 {
		t.Errorf("files watched: %v", got)
	}
	if got := testutil.ToFloat64(h.metrics.FileLinesRead.WithLabelValues("source", "logs")); got != 20 {
		t.Errorf("lines read: %v", got)
	}
}

func TestStartAtEnd(t *testing.T) {
	h := newHarness(t)
	appendLines(t, h.path("app.log"), numbered("old", 0, 10)...)
	cfg := testCfg(h.dir)
	cfg.StartAt = "end"
	h.start(cfg, false)
	appendLines(t, h.path("app.log"), numbered("new", 0, 5)...)
	// A file that appears later is read from its beginning.
	appendLines(t, h.path("app.log.other"), numbered("later", 0, 5)...)
	h.waitExactly(append(numbered("new", 0, 5), numbered("later", 0, 5)...))
}

func TestRestartResumesAtCheckpoint(t *testing.T) {
	h := newHarness(t)
	appendLines(t, h.path("app.log"), numbered("a", 0, 50)...)
	cfg := testCfg(h.dir)
	cfg.StartAt = "end" // applies only to the very first start
	h.start(cfg, false)
	appendLines(t, h.path("app.log"), numbered("a", 50, 60)...)
	h.waitExactly(numbered("a", 50, 60))
	h.stop()
	appendLines(t, h.path("app.log"), numbered("a", 60, 70)...)
	appendLines(t, h.path("app.log.new"), numbered("b", 0, 5)...)
	h.start(cfg, false)
	h.waitExactly(append(numbered("a", 50, 70), numbered("b", 0, 5)...))
}

func TestRotationRenameAndCreate(t *testing.T) {
	h := newHarness(t)
	h.start(testCfg(h.dir), false)
	var want []string
	for r := range 3 {
		lines := numbered(fmt.Sprintf("r%d", r), 0, 40)
		appendLines(t, h.path("app.log"), lines[:20]...)
		want = append(want, lines...)
		vtest.Eventually(t, 5*time.Second, "first lines read", func() bool {
			return len(h.in.stored()) >= len(want)-20
		})
		if err := os.Rename(h.path("app.log"), h.path(fmt.Sprintf("app.log.%d", r))); err != nil {
			t.Fatal(err)
		}
		// The writer still holds the renamed file for a moment.
		appendLines(t, h.path(fmt.Sprintf("app.log.%d", r)), lines[20:]...)
	}
	appendLines(t, h.path("app.log"), numbered("final", 0, 5)...)
	want = append(want, numbered("final", 0, 5)...)
	h.waitExactly(want)
	vtest.Eventually(t, 5*time.Second, "rotations counted", func() bool {
		return testutil.ToFloat64(h.metrics.FileRotations.WithLabelValues("source", "logs", "rename")) >= 1
	})
}

func TestRenamedOutOfGlobReadToEndAndReleased(t *testing.T) {
	h := newHarness(t)
	h.start(testCfg(h.dir), false)
	appendLines(t, h.path("app.log"), numbered("a", 0, 10)...)
	h.waitExactly(numbered("a", 0, 10))
	away := filepath.Join(h.dir, "rotated-away")
	if err := os.Rename(h.path("app.log"), away); err != nil {
		t.Fatal(err)
	}
	appendLines(t, away, numbered("a", 10, 12)...)
	appendLines(t, h.path("app.log"), numbered("b", 0, 3)...)
	h.waitExactly(append(numbered("a", 0, 12), numbered("b", 0, 3)...))
	if err := os.Remove(h.path("app.log")); err != nil {
		t.Fatal(err)
	}
	vtest.Eventually(t, 5*time.Second, "deleted files released", func() bool {
		return testutil.ToFloat64(h.metrics.FilesWatched.WithLabelValues("source", "logs")) == 0
	})
}

func TestCopyTruncate(t *testing.T) {
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("copy_seen_before_truncate=%v", slow), func(t *testing.T) { testCopyTruncate(t, slow) })
	}
}

func testCopyTruncate(t *testing.T, slow bool) {
	h := newHarness(t)
	h.start(testCfg(h.dir), false)
	var want []string
	for r := range 3 {
		lines := numbered(fmt.Sprintf("r%d", r), 0, 60)
		want = append(want, lines...)
		appendLines(t, h.path("app.log"), lines[:30]...)
		// Some are read before the copy is made, some not (they come from the copy).
		vtest.Eventually(t, 5*time.Second, "first lines read", func() bool {
			return len(h.in.stored()) >= len(want)-30
		})
		appendLines(t, h.path("app.log"), lines[30:]...)
		b, err := os.ReadFile(h.path("app.log"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.path(fmt.Sprintf("app.log.%d", r)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if slow {
			// The copy is found while the original is still whole.
			vtest.Eventually(t, 5*time.Second, "copy found", func() bool {
				return testutil.ToFloat64(h.metrics.FilesWatched.WithLabelValues("source", "logs")) == float64(r+2)
			})
			time.Sleep(30 * time.Millisecond)
		}
		if err := os.Truncate(h.path("app.log"), 0); err != nil {
			t.Fatal(err)
		}
	}
	appendLines(t, h.path("app.log"), numbered("final", 0, 30)...)
	want = append(want, numbered("final", 0, 30)...)
	h.waitExactly(want)
}

func TestTruncationRestartsAtZero(t *testing.T) {
	h := newHarness(t)
	h.start(testCfg(h.dir), false)
	appendLines(t, h.path("app.log"), numbered("a", 0, 30)...)
	h.waitExactly(numbered("a", 0, 30))
	if err := os.Truncate(h.path("app.log"), 0); err != nil {
		t.Fatal(err)
	}
	vtest.Eventually(t, 5*time.Second, "truncation seen", func() bool {
		return testutil.ToFloat64(h.metrics.FileRotations.WithLabelValues("source", "logs", "truncate")) == 1
	})
	appendLines(t, h.path("app.log"), numbered("b", 0, 3)...)
	h.waitExactly(append(numbered("a", 0, 30), numbered("b", 0, 3)...))
}

// TestInodeReuse: a checkpoint's device and inode now name another file (the old one
// was deleted and the inode reused); its first bytes differ, so it is read from 0.
func TestInodeReuse(t *testing.T) {
	h := newHarness(t)
	appendLines(t, h.path("app.log"), numbered("new-content", 0, 30)...)
	fi, err := os.Stat(h.path("app.log"))
	if err != nil {
		t.Fatal(err)
	}
	id := statID(fi)
	// A checkpoint of a former file on the same inode, read far past this one's size.
	st := newStore(filepath.Join(h.data, "sources", "logs"))
	if err := st.save([]checkpoint{{Path: h.path("app.log"), Dev: id.dev, Ino: id.ino, FPLen: 1024,
		FP: strings.Repeat("ab", 32), Offset: 1500}}); err != nil {
		t.Fatal(err)
	}
	cfg := testCfg(h.dir)
	cfg.StartAt = "end"
	h.start(cfg, false)
	h.waitExactly(numbered("new-content", 0, 30))
}

func TestMultiline(t *testing.T) {
	h := newHarness(t)
	cfg := testCfg(h.dir)
	cfg.Multiline = Multiline{Start: `^\d{4}-\d{2}-\d{2} `, Timeout: 50 * time.Millisecond}
	appendLines(t, h.path("app.log"),
		"2026-12-07 10:00:00 INFO started",
		"2026-12-07 10:00:01 ERROR boom",
		"java.lang.IllegalStateException: boom",
		"\tat com.example.Foo.bar(Foo.java:42)",
		"\tat com.example.Main.main(Main.java:7)",
		"2026-12-07 10:00:02 INFO last")
	h.start(cfg, false)
	h.waitExactly([]string{
		"2026-12-07 10:00:00 INFO started",
		"2026-12-07 10:00:01 ERROR boom\njava.lang.IllegalStateException: boom\n\tat com.example.Foo.bar(Foo.java:42)\n\tat com.example.Main.main(Main.java:7)",
		"2026-12-07 10:00:02 INFO last",
	})
}

func TestMaxLineDeadLettered(t *testing.T) {
	h := newHarness(t)
	cfg := testCfg(h.dir)
	cfg.MaxLineBytes = 100
	long := strings.Repeat("L", 5000)
	appendLines(t, h.path("app.log"), "short one", long, "short two")
	h.start(cfg, false)
	h.waitExactly([]string{"short one", "short two"})
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	if len(h.in.letters) != 1 {
		t.Fatalf("want 1 dead letter, got %d", len(h.in.letters))
	}
	l := h.in.letters[0]
	if len(l.Original) != 100 || l.Stage != "intake" || !strings.Contains(l.Reason, "5000 bytes") {
		t.Errorf("letter: stage %q, reason %q, %d bytes", l.Stage, l.Reason, len(l.Original))
	}
}

func TestExclude(t *testing.T) {
	h := newHarness(t)
	cfg := testCfg(h.dir)
	cfg.Exclude = []string{"*.old"}
	appendLines(t, h.path("app.log"), "kept")
	appendLines(t, h.path("app.log.old"), "excluded")
	gz := h.path("app.log.1.gz")
	writeGzip(t, gz, "in gzip")
	h.start(cfg, false)
	h.waitExactly([]string{"kept"})
}

func TestReadGzipOnce(t *testing.T) {
	h := newHarness(t)
	cfg := testCfg(h.dir)
	cfg.ReadGzip = true
	writeGzip(t, h.path("app.log.1.gz"), "g1\ng2\ng3")
	h.start(cfg, false)
	h.waitExactly([]string{"g1", "g2", "g3"})
	h.stop()
	h.start(cfg, false)
	appendLines(t, h.path("app.log"), "plain")
	h.waitExactly([]string{"g1", "g2", "g3", "plain"})
}

func TestWholeRecords(t *testing.T) {
	h := newHarness(t)
	doc := `{"Records":[{"eventID":"1"},` + "\n" + `{"eventID":"2"}]}`
	if err := os.WriteFile(h.path("app.log.json"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start(testCfg(h.dir), true)
	h.waitExactly([]string{doc})
}

// TestStoreFailureRetried: lines are not checkpointed while Store fails, and are
// stored once it works again.
func TestStoreFailureRetried(t *testing.T) {
	h := newHarness(t)
	var failing sync.Mutex
	fails := 5
	h.in.fail = func() bool {
		failing.Lock()
		defer failing.Unlock()
		fails--
		return fails >= 0
	}
	appendLines(t, h.path("app.log"), numbered("a", 0, 10)...)
	h.start(testCfg(h.dir), false)
	h.waitExactly(numbered("a", 0, 10))
}

func TestCheckpointOnlyAfterStore(t *testing.T) {
	h := newHarness(t)
	block := make(chan struct{})
	var once sync.Once
	h.in.fail = func() bool {
		once.Do(func() { <-block })
		return false
	}
	appendLines(t, h.path("app.log"), numbered("a", 0, 10)...)
	h.start(testCfg(h.dir), false)
	time.Sleep(50 * time.Millisecond)
	cps, _, err := newStore(filepath.Join(h.data, "sources", "logs")).load()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if c.Offset != 0 {
			t.Errorf("checkpoint at %d before the store returned", c.Offset)
		}
	}
	close(block)
	h.waitExactly(numbered("a", 0, 10))
	h.stop()
	cps, _, _ = newStore(filepath.Join(h.data, "sources", "logs")).load()
	fi, _ := os.Stat(h.path("app.log"))
	if len(cps) != 1 || cps[0].Offset != fi.Size() {
		t.Errorf("checkpoints after store: %+v, want offset %d", cps, fi.Size())
	}
}

func writeGzip(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(zw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

func testLog(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestCrashRestoresPendingRangeUnderSameID: a checkpoint written while a batch was
// being stored makes the restarted source store exactly that range again under the
// same ID (which the stream drops as a duplicate), even with other batch sizes.
func TestCrashRestoresPendingRangeUnderSameID(t *testing.T) {
	h := newHarness(t)
	appendLines(t, h.path("app.log"), numbered("a", 0, 25)...)
	cfg := testCfg(h.dir)
	cfg.BatchMaxLines = 10
	h.start(cfg, false)
	h.waitExactly(numbered("a", 0, 25))
	h.stop()
	h.in.mu.Lock()
	firstID := h.in.ids[0]
	h.in.mu.Unlock()
	st := newStore(filepath.Join(h.data, "sources", "logs"))
	cps, _, err := st.load()
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints %v: %v", cps, err)
	}
	// As if killed while storing the first batch: lines 0-9.
	cps[0].Offset, cps[0].Pending = 0, int64(10*len(numbered("a", 0, 1)[0])+10)
	if err := st.save(cps); err != nil {
		t.Fatal(err)
	}
	h.in = &fakeIntake{}
	cfg.BatchMaxLines = 7
	h.start(cfg, false)
	h.waitExactly(numbered("a", 0, 25))
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	if h.in.ids[0] != firstID {
		t.Errorf("first batch after the crash has ID %q, want %q as before", h.in.ids[0], firstID)
	}
}
