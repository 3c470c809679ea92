package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// postNumbered posts one request per n in [from, to) to dataset, each one event
// {"n": n}, so that each becomes its own event batch.
func postNumbered(t *testing.T, base, dataset string, from, to int) {
	t.Helper()
	for n := from; n < to; n++ {
		if code, out := post(t, base+"/v1/events/"+dataset, "application/json", fmt.Sprintf(`{"n":%d}`, n)); code != 200 {
			t.Fatalf("post %d: %d %v", n, code, out)
		}
	}
}

// archivedOnce fails unless the archive under dir holds each n in [0, total) exactly
// once and nothing else.
func archivedOnce(t *testing.T, archive string, total int) {
	t.Helper()
	seen := map[int]int{}
	docs := testutil.ArchiveDocs(t, archive)
	for _, d := range docs {
		n, _ := d["n"].(float64)
		seen[int(n)]++
	}
	for n := range total {
		if seen[n] != 1 {
			t.Errorf("event %d archived %d times, want once", n, seen[n])
		}
	}
	if len(docs) != total {
		t.Errorf("archive holds %d documents, want %d", len(docs), total)
	}
}

// archived reports whether event n is in the archive.
func archived(t *testing.T, archive string, n int) bool {
	for _, d := range testutil.ArchiveDocs(t, archive) {
		if d["n"] == float64(n) {
			return true
		}
	}
	return false
}

// TestEventsStreamRecreated archives events, has the events stream recreated (its
// folder wiped while Vigil is down, or the stream deleted as `nats stream rm` would),
// restarts on the same data directory and sends new events: their batches get the
// sequences of the old ones again, and every new event must be archived without
// overwriting any old one.
func TestEventsStreamRecreated(t *testing.T) {
	for _, how := range []string{"folder wiped", "stream deleted"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			archive := filepath.Join(dir, "archive")
			p, base := start(t, testConfig(t, dir, nil))
			postNumbered(t, base, "recreated", 0, 6)
			testutil.Eventually(t, 20*time.Second, "6 documents archived", func() bool {
				return len(testutil.ArchiveDocs(t, archive)) >= 6
			})
			if how == "stream deleted" {
				if err := p.Stream().JetStream().DeleteStream(context.Background(), stream.EventsStream); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if how == "folder wiped" {
				folder := filepath.Join(dir, "stream", "jetstream", "$G", "streams", stream.EventsStream)
				if _, err := os.Stat(folder); err != nil {
					t.Fatalf("the events stream's folder: %v", err)
				}
				if err := os.RemoveAll(folder); err != nil {
					t.Fatal(err)
				}
			}

			_, base = start(t, testConfig(t, dir, nil))
			postNumbered(t, base, "recreated", 6, 12)
			testutil.Eventually(t, 20*time.Second, "12 documents archived", func() bool {
				return len(testutil.ArchiveDocs(t, archive)) >= 12
			})
			archivedOnce(t, archive, 12)
		})
	}
}

// republish stores the event batch at seq of the events stream again, with its
// message ID, once the stream's duplicate window has passed (until then the stream
// drops it as a duplicate), as processing does when it re-processes an intake
// message after a slow restart.
func republish(t *testing.T, js jetstream.JetStream, seq uint64) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	if orig.Header.Get(nats.MsgIdHdr) == "" {
		t.Fatalf("event batch %d has no message ID: %v", seq, orig.Header)
	}
	testutil.Eventually(t, 20*time.Second, "a re-publish past the duplicate window", func() bool {
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: orig.Subject, Header: orig.Header, Data: orig.Data})
		if err != nil {
			t.Fatal(err)
		}
		return !ack.Duplicate
	})
}

// TestRepublishedBatchNotDeliveredAgain re-publishes an already delivered event batch
// with its message ID after the duplicate window: the stream takes it as a new
// message, and the sink must not deliver it a second time — neither while running
// nor after a restart.
func TestRepublishedBatchNotDeliveredAgain(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	window := func(c *config.Config, _ *httpsource.Config, _ *archivesink.Config) {
		c.Buffer.DuplicateWindow = time.Second
	}
	p, base := start(t, testConfig(t, dir, window))
	postNumbered(t, base, "dup", 0, 3)
	testutil.Eventually(t, 20*time.Second, "3 documents archived", func() bool { return len(testutil.ArchiveDocs(t, archive)) >= 3 })

	republish(t, p.Stream().JetStream(), 1)
	// The marker's batch follows the re-published one in the stream and in the same
	// dataset, so once it is archived the re-published one was dealt with.
	postNumbered(t, base, "dup", 3, 4)
	testutil.Eventually(t, 20*time.Second, "the marker archived", func() bool { return archived(t, archive, 3) })
	archivedOnce(t, archive, 4)

	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, base = start(t, testConfig(t, dir, window))
	republish(t, p.Stream().JetStream(), 2)
	postNumbered(t, base, "dup", 4, 5)
	testutil.Eventually(t, 20*time.Second, "the second marker archived", func() bool { return archived(t, archive, 4) })
	archivedOnce(t, archive, 5)
}

// startPruning is start with sink runners that prune every d.
func startPruning(t *testing.T, cfg *config.Config, d time.Duration) string {
	t.Helper()
	p, err := pipeline.New(cfg, pipeline.Options{Log: discardLogger(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	pipeline.SetPruneInterval(p, d)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return "http://" + p.Sources()["web"].(*httpsource.Source).Addr()
}

// fileLines counts the lines of a file.
func fileLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte{'\n'})
}

// TestPruneBounded sends many batches through a small archive: once they are
// delivered, the sink runner's delivered log and the archive's journal hold nothing
// the stream could still deliver again, so they stay small however long the node
// runs, while every file stays.
func TestPruneBounded(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	cfg := testConfig(t, dir, func(_ *config.Config, _ *httpsource.Config, a *archivesink.Config) { a.MaxBytes = 1 << 10 })
	base := startPruning(t, cfg, 100*time.Millisecond)
	const events = 120
	postNumbered(t, base, "many", 0, events)
	testutil.Eventually(t, 30*time.Second, "every event archived", func() bool {
		return len(testutil.ArchiveDocs(t, archive)) >= events
	})
	archivedOnce(t, archive, events)
	journal := filepath.Join(archive, ".journal", "archive")
	delivered := filepath.Join(dir, "sinks", "archive.delivered")
	testutil.Eventually(t, 20*time.Second, "journal and delivered log pruned", func() bool {
		return fileLines(t, journal) <= 2 && fileLines(t, delivered) <= 2
	})
	files := 0
	_ = filepath.WalkDir(filepath.Join(archive, "many"), func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files < 10 {
		t.Errorf("%d archive files: want many, pruning never removes files", files)
	}
}
