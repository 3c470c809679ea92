package archivesink_test

import (
	"bytes"
	"context"
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
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	vtestutil "github.com/vigil-sec/vigil/internal/testutil"
)

const sinkName = "archive"

// streamTime is the stream time of every test batch: it names the hour directory.
var streamTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// testEpoch is the events stream epoch of the test batches unless a test says
// otherwise.
const testEpoch = 1772600767000000000

// hourDir is where the files of a dataset's batches at streamTime go.
func hourDir(dataset string) string { return filepath.Join(dataset, "2026", "03", "04", "05") }

// fileName is the name of the file of testEpoch's batches first to last.
func fileName(first, last uint64) string {
	return fmt.Sprintf("%d-%d-%d.ndjson.gz", testEpoch, first, last)
}

// testConfig rotates by size after three batches (3 × 400 bytes ≥ 1KiB) and, unless a
// test says otherwise, never by age.
func testConfig(dir string) *archivesink.Config {
	c := archivesink.NewConfig()
	c.Path = dir
	c.MaxBytes = 1 << 10
	c.MaxAge = time.Hour
	return c
}

// run is one process's sink and what it acknowledged.
type run struct {
	*archivesink.Sink
	metrics *component.Metrics
	epoch   int64 // of the batches consume hands over

	mu        sync.Mutex
	delivered map[uint64]int // batches handed to Consume, by sequence
	acks      map[uint64][]error
}

// start builds and starts a sink over cfg, as one process would.
func start(t *testing.T, cfg *archivesink.Config) *run {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &run{metrics: component.NewMetrics(prometheus.NewRegistry()), epoch: testEpoch, delivered: map[uint64]int{}, acks: map[uint64][]error{}}
	r.Sink = archivesink.New(cfg, component.SinkDeps{Name: sinkName, Log: slog.New(slog.DiscardHandler), Metrics: r.metrics})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// docsPerBatch documents of docSize bytes each: every batch is 400 bytes.
const (
	docsPerBatch = 4
	docSize      = 100
)

// docID is the event.id of document i of batch seq of dataset in epoch.
func docID(epoch int64, dataset string, seq uint64, i int) string {
	return fmt.Sprintf("%d/%s-%d-%d", epoch, dataset, seq, i)
}

// consume hands the sink batch seq of dataset of r.epoch, with ids from docID.
func (r *run) consume(t *testing.T, dataset string, seq uint64, redelivered bool) {
	t.Helper()
	r.consumeBatch(t, r.batch(dataset, seq), redelivered)
}

// batch is the documents of batch seq of dataset of r.epoch, with ids from docID.
func (r *run) batch(dataset string, seq uint64) *component.Batch {
	var docs []byte
	for i := range docsPerBatch {
		doc := fmt.Sprintf(`{"event":{"id":%q,"dataset":%q},"message":"`, docID(r.epoch, dataset, seq, i), dataset)
		doc += strings.Repeat("x", docSize-len(doc)-3) + "\"}\n"
		docs = append(docs, doc...)
	}
	return component.NewBatch(dataset, seq, streamTime.Add(time.Duration(seq)*time.Second), docs, docsPerBatch, nil)
}

// consumeBatch hands the sink b (from batch, perhaps turned into a frame).
func (r *run) consumeBatch(t *testing.T, b *component.Batch, redelivered bool) {
	t.Helper()
	dataset, seq, frame, size := b.Dataset, b.Seq, b.Frame, b.Size
	b = component.NewBatch(dataset, seq, b.Time, b.Docs, b.Count, func(err error) {
		r.mu.Lock()
		r.acks[seq] = append(r.acks[seq], err)
		r.mu.Unlock()
	})
	b.Frame, b.Size = frame, size
	b.Epoch = r.epoch
	b.Redelivered = redelivered
	r.mu.Lock()
	r.delivered[seq]++
	r.mu.Unlock()
	if err := r.Consume(context.Background(), b); err != nil {
		t.Fatalf("consume %s %d: %v", dataset, seq, err)
	}
}

// acked reports whether seq was acknowledged with success.
func (r *run) acked(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.acks[seq]
	return len(errs) > 0 && errs[len(errs)-1] == nil
}

// checkAcked fails unless exactly the sequences want were acknowledged: every batch
// handed over with one of them once, with success.
func (r *run) checkAcked(t *testing.T, want ...uint64) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range want {
		errs := r.acks[q]
		if len(errs) != r.delivered[q] || slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
			t.Errorf("batch %d: acknowledgements %v of %d deliveries, want one success each", q, errs, r.delivered[q])
		}
	}
	for q := range r.acks {
		if !slices.Contains(want, q) {
			t.Errorf("batch %d acknowledged (%v), want it held", q, r.acks[q])
		}
	}
}

func (r *run) stop(t *testing.T) {
	t.Helper()
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// files lists the finished archive files under dir, relative to it, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != dir {
			return filepath.SkipDir // .tmp and .journal
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// journal returns the lines of the sink's journal.
func journal(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".journal", sinkName))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func writeJournal(t *testing.T, dir string, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, ".journal", sinkName), []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

// tmpFiles lists the temporary directory.
func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// checkArchive fails unless the archive holds every document of testEpoch's batches
// want (by dataset) exactly once, and nothing else.
func checkArchive(t *testing.T, dir string, want map[string][]uint64) {
	t.Helper()
	checkEpochs(t, dir, map[int64]map[string][]uint64{testEpoch: want})
}

// checkEpochs is checkArchive for batches of several epochs.
func checkEpochs(t *testing.T, dir string, want map[int64]map[string][]uint64) {
	t.Helper()
	seen := map[string]int{}
	docs := vtestutil.ArchiveDocs(t, dir)
	for _, d := range docs {
		id, _ := vtestutil.Field(d, "event.id").(string)
		seen[id]++
	}
	total := 0
	for epoch, batches := range want {
		for ds, seqs := range batches {
			for _, q := range seqs {
				for i := range docsPerBatch {
					id := docID(epoch, ds, q, i)
					if seen[id] != 1 {
						t.Errorf("document %s archived %d times, want once", id, seen[id])
					}
					total++
				}
			}
		}
	}
	if len(docs) != total {
		t.Errorf("archive holds %d documents, want %d", len(docs), total)
	}
}

// checkConsistent fails unless the temporary directory is empty and the journal
// names each finished file exactly once and no other.
func checkConsistent(t *testing.T, dir string) {
	t.Helper()
	if tmps := tmpFiles(t, dir); len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
	var named []string
	for _, line := range journal(t, dir) {
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Errorf("journal line %q: want 5 fields", line)
			continue
		}
		named = append(named, f[3])
	}
	slices.Sort(named)
	if got := files(t, dir); !slices.Equal(named, got) {
		t.Errorf("journal names %v, archive holds %v", named, got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*archivesink.Config)
		err    string
	}{
		{name: "defaults", modify: func(*archivesink.Config) {}},
		{name: "small max_bytes", modify: func(c *archivesink.Config) { c.MaxBytes = 1000 }, err: "max_bytes: must be at least 1KiB"},
		{name: "short max_age", modify: func(c *archivesink.Config) { c.MaxAge = 10 * time.Millisecond }, err: "max_age: must be at least 100ms"},
		{name: "level 0", modify: func(c *archivesink.Config) { c.CompressionLevel = 0 }, err: "compression_level: want 1 to 9, got 0"},
		{name: "level 10", modify: func(c *archivesink.Config) { c.CompressionLevel = 10 }, err: "compression_level: want 1 to 9, got 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := archivesink.NewConfig()
			tt.modify(c)
			err := c.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	dataDir := t.TempDir()
	s := archivesink.New(archivesink.NewConfig(), component.SinkDeps{Name: sinkName, DataDir: dataDir,
		Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if want := filepath.Join(dataDir, "archive"); s.Path() != want {
		t.Errorf("path %q, want %q", s.Path(), want)
	}
}

// TestRotateBySize: a file ends, and its batches are acknowledged, in the Consume that
// brings it to max_bytes; each dataset has its own file, named by its sequences.
func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	r := start(t, testConfig(dir))
	r.consume(t, "web", 1, false)
	r.consume(t, "fw", 2, false)
	r.consume(t, "web", 3, false)
	r.checkAcked(t) // 800 bytes of web, 400 of fw: below 1KiB
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("files before max_bytes: %v", got)
	}
	r.consume(t, "web", 4, false)
	r.checkAcked(t, 1, 3, 4)
	want := []string{filepath.Join(hourDir("web"), fileName(1, 4))}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	checkArchive(t, dir, map[string][]uint64{"web": {1, 3, 4}})
	r.consume(t, "fw", 5, false)
	r.consume(t, "fw", 6, false)
	r.checkAcked(t, 1, 2, 3, 4, 5, 6)
	r.consume(t, "web", 7, false) // held until Stop
	r.stop(t)
	r.checkAcked(t, 1, 2, 3, 4, 5, 6, 7)
	want = []string{
		filepath.Join(hourDir("fw"), fileName(2, 6)),
		filepath.Join(hourDir("web"), fileName(1, 4)),
		filepath.Join(hourDir("web"), fileName(7, 7)),
	}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	checkArchive(t, dir, map[string][]uint64{"web": {1, 3, 4, 7}, "fw": {2, 5, 6}})
	checkConsistent(t, dir)
	if got := testutil.ToFloat64(r.metrics.SentEvents.WithLabelValues("sink", sinkName)); got != 7*docsPerBatch {
		t.Errorf("sent events %v, want %d", got, 7*docsPerBatch)
	}
}

// TestRotateByAge: a file younger than max_bytes ends max_age after it was opened.
func TestRotateByAge(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxBytes = 1 << 20
	cfg.MaxAge = 100 * time.Millisecond
	r := start(t, cfg)
	defer r.stop(t)
	began := time.Now()
	r.consume(t, "web", 1, false)
	r.consume(t, "web", 2, false)
	vtestutil.Eventually(t, 10*time.Second, "batches acknowledged after max_age", func() bool { return r.acked(1) && r.acked(2) })
	if waited := time.Since(began); waited < cfg.MaxAge {
		t.Errorf("file ended after %v, before max_age %v", waited, cfg.MaxAge)
	}
	r.checkAcked(t, 1, 2)
	if got, want := files(t, dir), []string{filepath.Join(hourDir("web"), fileName(1, 2))}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	checkArchive(t, dir, map[string][]uint64{"web": {1, 2}})

	// A later batch opens a new file, which ages on its own.
	r.consume(t, "web", 3, false)
	vtestutil.Eventually(t, 10*time.Second, "second file after max_age", func() bool { return r.acked(3) })
	checkArchive(t, dir, map[string][]uint64{"web": {1, 2, 3}})
	checkConsistent(t, dir)
}

// TestStop: Stop finishes the open files and acknowledges their batches; it is
// idempotent and safe without Start, and the sink refuses batches afterwards.
func TestStop(t *testing.T) {
	unstarted := archivesink.New(testConfig(t.TempDir()), component.SinkDeps{Name: sinkName,
		Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err := unstarted.Stop(context.Background()); err != nil {
		t.Fatalf("Stop without Start: %v", err)
	}

	dir := t.TempDir()
	r := start(t, testConfig(dir))
	r.consume(t, "web", 1, false)
	r.consume(t, "fw", 2, false)
	r.checkAcked(t)
	r.stop(t)
	r.checkAcked(t, 1, 2)
	r.stop(t)
	r.checkAcked(t, 1, 2)
	err := r.Consume(context.Background(), component.NewBatch("web", 3, streamTime, []byte("{}\n"), 1, func(error) {
		t.Error("a batch refused by Consume must not be acknowledged")
	}))
	if err == nil {
		t.Error("Consume after Stop succeeded")
	}
	checkArchive(t, dir, map[string][]uint64{"web": {1}, "fw": {2}})
	checkConsistent(t, dir)
}

// TestJournal: a batch recorded as written is not written again by a later process,
// however often the stream redelivers it, while new batches still are.
func TestJournal(t *testing.T) {
	dir := t.TempDir()
	r1 := start(t, testConfig(dir))
	for q := uint64(1); q <= 4; q++ {
		r1.consume(t, "web", q, false)
	}
	r1.consume(t, "fw", 5, false)
	r1.stop(t)
	r1.checkAcked(t, 1, 2, 3, 4, 5)
	before := files(t, dir)

	// The acknowledgements were lost (a crash before the stream recorded them): the
	// next process gets every batch again.
	for restart := range 2 {
		r := start(t, testConfig(dir))
		for q := uint64(1); q <= 4; q++ {
			r.consume(t, "web", q, true)
		}
		r.consume(t, "fw", 5, true)
		r.checkAcked(t, 1, 2, 3, 4, 5) // at once: nothing is held
		r.stop(t)
		if got := files(t, dir); !slices.Equal(got, before) {
			t.Fatalf("restart %d: files %v, want %v unchanged", restart, got, before)
		}
		if got := testutil.ToFloat64(r.metrics.Discarded.WithLabelValues("sink", sinkName, "already_archived")); got != 5*docsPerBatch {
			t.Errorf("restart %d: already_archived %v, want %d", restart, got, 5*docsPerBatch)
		}
	}

	// The same sequence in another dataset is another batch.
	r := start(t, testConfig(dir))
	r.consume(t, "fw", 1, false)
	r.consume(t, "web", 6, false)
	r.stop(t)
	r.checkAcked(t, 1, 6)
	checkArchive(t, dir, map[string][]uint64{"web": {1, 2, 3, 4, 6}, "fw": {1, 5}})
	checkConsistent(t, dir)
}

// consumeUntilCrash hands the sink a batch whose Consume is expected to crash (see
// CrashBefore), then ends the sink as kill -9 would.
func (r *run) consumeUntilCrash(t *testing.T, dataset string, seq uint64) {
	t.Helper()
	crashed := func() (crashed bool) {
		defer func() {
			if v := recover(); v != nil {
				if v != archivesink.ErrCrash {
					panic(v)
				}
				crashed = true
			}
		}()
		r.consume(t, dataset, seq, false)
		return false
	}()
	if !crashed {
		t.Fatalf("consume %s %d did not reach the crash point", dataset, seq)
	}
	r.Crash()
}

// TestCrash kills a process at each point of archive.go where a crash leaves
// different state on disk, restarts on the same directory, and has the stream
// redeliver every batch not acknowledged: the archive must end with every document
// exactly once, and a further run that gets everything again must write nothing.
//
// A file's life (Consume → rotate → finish): written to .tmp/<sink>-<dataset>-<epoch>-<seq>.tmp
// through bufio and gzip, closed and fsynced; its journal line appended and fsynced;
// renamed into place and its directory fsynced; its batches acknowledged. The
// crashes happen just before each step (CrashBefore), so a reordering of the steps
// moves the crash with them: renaming before journaling would leave a file no
// journal line protects, and the redelivery would duplicate it.
func TestCrash(t *testing.T) {
	fileA := filepath.Join(hourDir("web"), fileName(1, 3))
	tmpA := filepath.Join(".tmp", fmt.Sprintf("%s-web-%d-1.tmp", sinkName, testEpoch))
	exists := func(t *testing.T, path string) bool {
		t.Helper()
		_, err := os.Stat(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	tests := []struct {
		name string
		// before is the step of file A's rotation (web 1-3, in the Consume of batch
		// 3) the process dies before; empty: it dies later, with web 4-5 and fw 6
		// held in open files.
		before string
		// journaled and renamed describe file A at the crash.
		journaled, renamed bool
		// tear cuts the journal's last line, as a crash while writing it would.
		tear bool
	}{
		{name: "mid-write, files in .tmp partly written", journaled: true, renamed: true},
		{name: "file fsynced in .tmp, not journaled", before: "journal"},
		{name: "journal line torn", before: "rename", journaled: true, tear: true},
		{name: "journaled, not renamed", before: "rename", journaled: true},
		{name: "renamed, not acknowledged", before: "acknowledge", journaled: true, renamed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r1 := start(t, testConfig(dir))
			r1.consume(t, "web", 1, false)
			r1.consume(t, "web", 2, false)
			var unacked, fresh []uint64
			if tt.before != "" {
				r1.CrashBefore(tt.before)
				r1.consumeUntilCrash(t, "web", 3)
				r1.checkAcked(t)
				unacked, fresh = []uint64{1, 2, 3}, []uint64{4, 5, 6}
			} else {
				r1.consume(t, "web", 3, false)
				r1.consume(t, "web", 4, false)
				r1.consume(t, "web", 5, false)
				r1.consume(t, "fw", 6, false)
				r1.checkAcked(t, 1, 2, 3)
				r1.Crash()
				if got := tmpFiles(t, dir); len(got) != 2 {
					t.Fatalf("temporary files %v, want web's and fw's", got)
				}
				unacked = []uint64{4, 5, 6}
			}
			// The state the crash left.
			var lines []string
			if _, err := os.Stat(filepath.Join(dir, ".journal", sinkName)); err == nil {
				lines = slices.DeleteFunc(journal(t, dir), func(l string) bool { return l == "" })
			}
			if journaled := len(lines) == 1 && strings.HasSuffix(lines[0], " 1,2,3"); journaled != tt.journaled {
				t.Fatalf("journal %q: A journaled %v, want %v", lines, journaled, tt.journaled)
			}
			if renamed := exists(t, filepath.Join(dir, fileA)); renamed != tt.renamed {
				t.Fatalf("A renamed %v, want %v", renamed, tt.renamed)
			}
			if tt.before != "" && exists(t, filepath.Join(dir, tmpA)) == tt.renamed {
				t.Fatalf("%s: want it exactly when A is not renamed", tmpA)
			}
			if tt.tear {
				torn := lines[0][:strings.LastIndexByte(lines[0], ',')] // still four fields
				writeJournal(t, dir, torn)
			}
			datasetOf := func(q uint64) string { return map[bool]string{true: "fw", false: "web"}[q == 6] }

			r2 := start(t, testConfig(dir))
			if got := tmpFiles(t, dir); len(got) != 0 {
				t.Errorf("temporary files after restart: %v", got)
			}
			for _, q := range unacked {
				r2.consume(t, datasetOf(q), q, true)
			}
			for _, q := range fresh {
				r2.consume(t, datasetOf(q), q, false)
			}
			r2.stop(t)
			r2.checkAcked(t, append(unacked, fresh...)...)
			want := map[string][]uint64{"web": {1, 2, 3, 4, 5}, "fw": {6}}
			checkArchive(t, dir, want)
			checkConsistent(t, dir)
			if !slices.Contains(files(t, dir), fileA) {
				t.Errorf("files %v: want %s", files(t, dir), fileA)
			}

			// Acknowledgements lost once more: a third process writes nothing again.
			before := files(t, dir)
			r3 := start(t, testConfig(dir))
			for q := uint64(1); q <= 6; q++ {
				r3.consume(t, datasetOf(q), q, true)
			}
			r3.checkAcked(t, 1, 2, 3, 4, 5, 6)
			r3.stop(t)
			if got := files(t, dir); !slices.Equal(got, before) {
				t.Errorf("files %v after a third run, want %v", got, before)
			}
			checkArchive(t, dir, want)
			checkConsistent(t, dir)
		})
	}
}

// TestJournalGarbage: lines that are not journal records (a torn line, an empty
// line, a line of another shape) are dropped on start, and the records around them
// still count.
func TestJournalGarbage(t *testing.T) {
	dir := t.TempDir()
	r1 := start(t, testConfig(dir))
	for q := uint64(1); q <= 3; q++ {
		r1.consume(t, "web", q, false)
	}
	r1.stop(t)
	good := journal(t, dir)
	writeJournal(t, dir, "garbage\n\n1700000000 web\n"+strings.Join(good, "\n")+"\n1700000000 web web/x 4,5 extra\n17000")

	r2 := start(t, testConfig(dir))
	if got := journal(t, dir); !slices.Equal(got, good) {
		t.Errorf("journal after start %q, want %q", got, good)
	}
	for q := uint64(1); q <= 3; q++ {
		r2.consume(t, "web", q, true)
	}
	r2.checkAcked(t, 1, 2, 3)
	r2.consume(t, "web", 4, false)
	r2.stop(t)
	checkArchive(t, dir, map[string][]uint64{"web": {1, 2, 3, 4}})
	checkConsistent(t, dir)
}

// TestPrune: Prune with the consumer's acknowledgement floor keeps the journal and
// the sink's memory of archived batches as small as what may still be redelivered,
// however many batches pass; what is above the floor is still recognised, and the
// records of another epoch are dropped.
func TestPrune(t *testing.T) {
	dir := t.TempDir()
	r := start(t, testConfig(dir))
	const batches = 600 // 200 files: three batches fill one
	for q := uint64(1); q <= batches; q++ {
		r.consume(t, "web", q, false)
		if q%30 == 0 {
			// The runtime prunes with a floor observed a while ago: lag it.
			r.Prune(testEpoch, q-15)
		}
	}
	seqs, lines := r.Remembered()
	if seqs > 30 || lines > 10 {
		t.Errorf("after %d batches: %d sequences and %d journal records remembered, want at most 30 and 10", batches, seqs, lines)
	}
	if n := len(journal(t, dir)); n > 10 {
		t.Errorf("after %d batches: %d journal lines, want at most 10", batches, n)
	}
	// Above the floor: still known, acknowledged without writing.
	before := len(files(t, dir))
	r.consume(t, "web", batches, true)
	if got := testutil.ToFloat64(r.metrics.Discarded.WithLabelValues("sink", sinkName, "already_archived")); got != docsPerBatch {
		t.Errorf("already_archived %v, want %d", got, docsPerBatch)
	}
	// Another epoch: everything of this one goes.
	r.Prune(testEpoch+1, 0)
	if seqs, lines := r.Remembered(); seqs != 0 || lines != 0 {
		t.Errorf("after a prune for another epoch: %d sequences and %d records, want none", seqs, lines)
	}
	r.stop(t)
	if got := files(t, dir); len(got) != before {
		t.Errorf("%d files after pruning, want the %d written: pruning never removes files", len(got), before)
	}
	all := make([]uint64, batches)
	for i := range all {
		all[i] = uint64(i + 1)
	}
	checkArchive(t, dir, map[string][]uint64{"web": all})

	// The journal stays appendable after a compaction, and a restart reads it.
	r2 := start(t, testConfig(dir))
	r2.consume(t, "web", batches+1, false)
	r2.stop(t)
	checkConsistentFrom(t, dir, before)
}

// checkConsistentFrom checks that every journal line names an existing file, and
// that the temporary directory is empty, when pruning left the journal without the
// records of the first files.
func checkConsistentFrom(t *testing.T, dir string, pruned int) {
	t.Helper()
	if tmps := tmpFiles(t, dir); len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
	all := files(t, dir)
	lines := journal(t, dir)
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 5 || !slices.Contains(all, f[3]) {
			t.Errorf("journal line %q names no file", line)
		}
	}
	if len(all) != pruned+len(lines) {
		t.Errorf("%d files, want %d pruned and %d journaled", len(all), pruned, len(lines))
	}
}

// TestNewEpoch: the events stream was recreated, and its batches come with the
// sequences of the former one's. They are archived, under names that do not collide
// with the files of the former epoch, which stay untouched.
func TestNewEpoch(t *testing.T) {
	dir := t.TempDir()
	r1 := start(t, testConfig(dir))
	for q := uint64(1); q <= 4; q++ {
		r1.consume(t, "web", q, false)
	}
	r1.stop(t)
	old := files(t, dir)

	const newEpoch = testEpoch + 1
	r2 := start(t, testConfig(dir))
	r2.epoch = newEpoch
	for q := uint64(1); q <= 4; q++ {
		r2.consume(t, "web", q, q == 2) // whether marked redelivered or not
	}
	r2.stop(t)
	r2.checkAcked(t, 1, 2, 3, 4)
	checkEpochs(t, dir, map[int64]map[string][]uint64{testEpoch: {"web": {1, 2, 3, 4}}, newEpoch: {"web": {1, 2, 3, 4}}})
	checkConsistent(t, dir)
	want := append(slices.Clone(old),
		filepath.Join(hourDir("web"), fmt.Sprintf("%d-1-3.ndjson.gz", newEpoch)),
		filepath.Join(hourDir("web"), fmt.Sprintf("%d-4-4.ndjson.gz", newEpoch)))
	slices.Sort(want)
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

// TestLegacyJournal: records of earlier versions name no epoch; they are dropped
// on start and their files kept.
func TestLegacyJournal(t *testing.T) {
	dir := t.TempDir()
	r1 := start(t, testConfig(dir))
	for q := uint64(1); q <= 3; q++ {
		r1.consume(t, "web", q, false)
	}
	r1.stop(t)
	f := strings.Fields(journal(t, dir)[0])
	writeJournal(t, dir, strings.Join([]string{f[0], f[2], f[3], f[4]}, " ")+"\n")
	r2 := start(t, testConfig(dir))
	defer r2.stop(t)
	if seqs, lines := r2.Remembered(); seqs != 0 || lines != 0 {
		t.Errorf("legacy record kept: %d sequences, %d records", seqs, lines)
	}
	if got := files(t, dir); len(got) != 1 {
		t.Errorf("files %v, want the one written", got)
	}
}

// TestZstd: compression zstd writes .ndjson.zst files, one zstd stream each, that
// hold exactly the batches' documents.
func TestZstd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Compression = "zstd"
	r := start(t, cfg)
	for seq := uint64(1); seq <= 4; seq++ {
		r.consume(t, "web", seq, false)
	}
	r.consume(t, "web", 5, false) // held until Stop
	r.checkAcked(t, 1, 2, 3)
	r.stop(t)
	r.checkAcked(t, 1, 2, 3, 4, 5)
	want := []string{
		filepath.Join(hourDir("web"), fmt.Sprintf("%d-1-3.ndjson.zst", testEpoch)),
		filepath.Join(hourDir("web"), fmt.Sprintf("%d-4-5.ndjson.zst", testEpoch)),
	}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	checkArchive(t, dir, map[string][]uint64{"web": {1, 2, 3, 4, 5}})
	checkConsistent(t, dir)
}

// TestFramesWrittenAsTheyAre: a batch that comes as a frame (it crossed the stream
// compressed as the archive compresses) is written byte for byte as it came, one
// that comes as documents is compressed into a frame of its own, and the file, the
// two kinds mixed, holds every document once. The frames are made at level 1 and
// the archive compresses at 9, so a frame compressed again would not match.
func TestFramesWrittenAsTheyAre(t *testing.T) {
	for _, enc := range []string{event.EncodingGzip, event.EncodingZstd} {
		t.Run(enc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir)
			cfg.Compression, cfg.CompressionLevel = enc, 9
			r := start(t, cfg)
			if r.FrameEncoding() != enc {
				t.Fatalf("FrameEncoding %q, want %q", r.FrameEncoding(), enc)
			}
			fast, err := event.NewFrameEncoder(enc, 1)
			if err != nil {
				t.Fatal(err)
			}
			small, err := event.NewFrameEncoder(enc, 9)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for seq := uint64(1); seq <= 3; seq++ {
				b := r.batch("web", seq)
				if seq == 2 {
					want = small.Append(want, b.Docs)
				} else {
					b.Frame, b.Size = fast.Append(nil, b.Docs), len(b.Docs)
					b.Docs = nil
					want = append(want, b.Frame...)
				}
				r.consumeBatch(t, b, false)
			}
			r.checkAcked(t, 1, 2, 3) // rotated by size: Size counts, not the frame's bytes
			got := files(t, dir)
			if len(got) != 1 {
				t.Fatalf("files %v", got)
			}
			data, err := os.ReadFile(filepath.Join(dir, got[0]))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("file of %d bytes, want the %d bytes of the frames as they came", len(data), len(want))
			}
			r.stop(t)
			checkArchive(t, dir, map[string][]uint64{"web": {1, 2, 3}})
			checkConsistent(t, dir)
		})
	}
}
