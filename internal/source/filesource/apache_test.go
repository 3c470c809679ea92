package filesource_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/filesource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestApacheRotation follows a real Apache's combined access log through a rename +
// graceful restart and a copytruncate, into the archive of a real pipeline, and finds
// every request there exactly once.
func TestApacheRotation(t *testing.T) {
	a := testutil.StartApache(t)
	dir := t.TempDir()
	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	fc := filesource.NewConfig()
	fc.Paths = []string{filepath.Join(a.Dir, "access.log*")}
	fc.Exclude = []string{"*.gz"}
	fc.StartAt = "beginning"
	fc.ScanInterval = 100 * time.Millisecond
	fc.PollInterval = 20 * time.Millisecond
	ac := archivesink.NewConfig()
	ac.MaxAge = 200 * time.Millisecond
	opts, _ := reg.FormatConfig("apache")
	cfg.Sources = []*config.Source{{Name: "apache", Type: "file", Format: "apache", FormatOptions: opts, Settings: fc}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: ac}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() || os.Getenv("VIGIL_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Version: "test", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})

	n := 0
	send := func(k int) {
		for range k {
			if err := a.Get(fmt.Sprintf("/req/%d", n)); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	send(50)
	// Rotation by rename and graceful restart (logrotate's default with apache2's
	// postrotate): requests between the rename and the restart still go to the
	// renamed file.
	if err := os.Rename(a.Log(), a.Log()+".1"); err != nil {
		t.Fatal(err)
	}
	send(20)
	if err := a.Graceful(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "apache reopened its log", func() bool {
		_, err := os.Stat(a.Log())
		return err == nil
	})
	send(50)
	// Rotation by copytruncate: apache keeps its file open (O_APPEND).
	// httpd logs a request after answering it: copy once the last one is in the
	// log, or copytruncate itself may lose it (between its copy and its truncate).
	testutil.Eventually(t, 10*time.Second, "last request logged", func() bool {
		b, _ := os.ReadFile(a.Log())
		return strings.Contains(string(b), fmt.Sprintf("/req/%d ", n-1))
	})
	if err := a.CopyTruncate(a.Log() + ".2"); err != nil {
		t.Fatal(err)
	}
	send(50)
	// A compressed older rotation is excluded.
	if err := os.WriteFile(a.Log()+".3.gz", []byte("\x1f\x8b not read"), 0o644); err != nil {
		t.Fatal(err)
	}
	send(30)

	archive := filepath.Join(dir, "archive")
	var docs []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		docs = testutil.ArchiveDocs(t, archive)
		got := map[string]bool{}
		for _, d := range docs {
			got[fmt.Sprint(testutil.Field(d, "url.original"))] = true
		}
		var missing []int
		for i := range n {
			if !got[fmt.Sprintf("/req/%d", i)] {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			files, _ := filepath.Glob(a.Log() + "*")
			t.Fatalf("%d of %d requests not archived, e.g. %v; log files %v", len(missing), n, missing[:min(20, len(missing))], files)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now
	docs = testutil.ArchiveDocs(t, archive)
	count := map[string]int{}
	for _, d := range docs {
		count[fmt.Sprint(testutil.Field(d, "url.original"))]++
		if ua := testutil.Field(d, "user_agent.original"); ua != "vigil-test/1.0" && !strings.HasPrefix(fmt.Sprint(testutil.Field(d, "url.original")), "/ready") {
			t.Errorf("user_agent.original %v in %v", ua, d)
		}
	}
	for i := range n {
		if c := count[fmt.Sprintf("/req/%d", i)]; c != 1 {
			// How often httpd logged it, by file.
			files, _ := filepath.Glob(a.Log() + "*")
			logged := map[string]int{}
			for _, f := range files {
				b, _ := os.ReadFile(f)
				logged[filepath.Base(f)] = strings.Count(string(b), fmt.Sprintf("/req/%d ", i))
			}
			t.Errorf("/req/%d archived %d times; in httpd's logs %v", i, c, logged)
		}
	}
	if len(docs) != n+count["/ready"] {
		t.Errorf("%d documents for %d requests (+%d readiness probes)", len(docs), n, count["/ready"])
	}
}
