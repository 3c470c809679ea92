package filesource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/filesource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestPendingRangeDroppedByStream: a checkpoint left as by a crash during a store
// (offset at the batch's start, pending at its end) makes the restarted source store
// that range again; the stream recognises it and the archive has every line once.
func TestPendingRangeDroppedByStream(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(logs, "app.log")
	var lines []string
	write := func(from, to int) {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			l := fmt.Sprintf("line %04d of the log", i)
			lines = append(lines, l)
			fmt.Fprintln(f, l)
		}
		f.Close()
	}
	run := func() func() {
		reg := components.Builtin()
		cfg := config.Defaults()
		cfg.DataDir = filepath.Join(dir, "data")
		cfg.Admin.Address = ""
		fc := filesource.NewConfig()
		fc.Paths = []string{filepath.Join(logs, "*.log")}
		fc.StartAt = "beginning"
		fc.ScanInterval = 20 * time.Millisecond
		fc.PollInterval = 10 * time.Millisecond
		fc.BatchMaxLines = 10
		ac := archivesink.NewConfig()
		ac.MaxAge = 100 * time.Millisecond
		opts, _ := reg.FormatConfig("lines")
		cfg.Sources = []*config.Source{{Name: "app", Type: "file", Format: "lines", FormatOptions: opts, Dataset: "app", Settings: fc}}
		cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: ac}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.DiscardHandler), Version: "test", Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := p.Stop(ctx); err != nil {
				t.Error(err)
			}
		}
	}
	archive := filepath.Join(dir, "data", "archive")
	waitOnce := func() {
		t.Helper()
		var count map[string]int
		testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d lines archived", len(lines)), func() bool {
			count = map[string]int{}
			for _, d := range testutil.ArchiveDocs(t, archive) {
				count[fmt.Sprint(d["message"])]++
			}
			return len(count) >= len(lines)
		})
		time.Sleep(300 * time.Millisecond)
		count = map[string]int{}
		for _, d := range testutil.ArchiveDocs(t, archive) {
			count[fmt.Sprint(d["message"])]++
		}
		for _, l := range lines {
			if count[l] != 1 {
				t.Errorf("%q archived %d times", l, count[l])
			}
		}
	}

	write(0, 20)
	stop := run()
	waitOnce()
	stop()

	// As if killed while the second batch (lines 10-19) was being stored, after the
	// stream had stored it, by a version that kept its checkpoints in one JSON file
	// naming the range being stored as "pending".
	cpDir := filepath.Join(dir, "data", "sources", "app")
	var cp map[string]any
	newest := -1
	for i := range 2 {
		b, err := os.ReadFile(filepath.Join(cpDir, fmt.Sprintf("checkpoints.%d", i)))
		if err != nil {
			continue
		}
		head, body, _ := bytes.Cut(b, []byte("\n"))
		var seq, n int
		var sum uint32
		if _, err := fmt.Sscanf(string(head), "vigil-file-checkpoints seq=%d len=%d crc32c=%x", &seq, &n, &sum); err != nil || seq < newest {
			continue
		}
		newest = seq
		if err := json.Unmarshal(body[:n], &cp); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if err := os.Remove(filepath.Join(cpDir, fmt.Sprintf("checkpoints.%d", i))); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if cp == nil {
		t.Fatal("no checkpoint slot found")
	}
	lineLen := len(lines[0]) + 1
	cp["version"] = 1
	f := cp["files"].([]any)[0].(map[string]any)
	f["offset"], f["pending"] = 10*lineLen, 20*lineLen
	b, _ := json.Marshal(cp)
	if err := os.WriteFile(filepath.Join(cpDir, "checkpoints.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	write(20, 30)
	stop = run()
	defer stop()
	waitOnce()
}
