package pollsource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/pollsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// runPreset loads a preset from examples/presets as written (with its ${VAR}s set
// by the caller), points its data directory at a temporary one and runs it.
func runPreset(t *testing.T, file string) (archive string) {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "..", "..", "examples", "presets", file), components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	for _, s := range cfg.Sources {
		// A second run soon, for the events added while the test runs.
		s.Settings.(*pollsource.Config).Interval = time.Second
	}
	for _, s := range cfg.Sinks {
		s.Settings.(*archivesink.Config).MaxAge = 200 * time.Millisecond
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test", Registry: components.Builtin()})
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
	return filepath.Join(dir, "archive")
}

// waitArchive waits until the archive holds want distinct ids (at field) and
// checks that none is there twice.
func waitArchive(t *testing.T, archive, field string, want int) {
	t.Helper()
	var byID map[string]int
	testutil.Eventually(t, 60*time.Second, fmt.Sprintf("%d records in the archive", want), func() bool {
		byID = map[string]int{}
		for _, d := range testutil.ArchiveDocs(t, archive) {
			byID[fmt.Sprint(testutil.Field(d, field))]++
		}
		return len(byID) >= want
	})
	if len(byID) != want {
		t.Fatalf("%d distinct records, want %d", len(byID), want)
	}
	for id, n := range byID {
		if n != 1 {
			t.Errorf("%s archived %d times", id, n)
		}
	}
}

func auditEvents(prefix string, n int, start time.Time) []testutil.AuditEvent {
	evs := make([]testutil.AuditEvent, n)
	for i := range evs {
		// Several events share a millisecond, as in a busy org.
		evs[i] = testutil.AuditEvent{ID: fmt.Sprintf("%s-%04d", prefix, i), Time: start.Add(time.Duration(i/3) * time.Millisecond)}
	}
	return evs
}

// TestPresetOkta runs examples/presets/okta-system-log.yaml against a server that
// pages and rate-limits as Okta's System Log API does.
func TestPresetOkta(t *testing.T) {
	api := testutil.StartOktaSystemLog(t, "okta-test-token")
	api.SetLimitEvery(3)
	api.Add(auditEvents("ev", 2500, time.Now().Add(-time.Hour))...)
	t.Setenv("OKTA_ORG_URL", api.URL)
	t.Setenv("OKTA_TOKEN", "okta-test-token")
	archive := runPreset(t, "okta-system-log.yaml")
	waitArchive(t, archive, "uuid", 2500)
	api.Add(auditEvents("late", 40, time.Now().Add(-30*time.Second))...)
	waitArchive(t, archive, "uuid", 2540)
	if _, limited := api.Counts(); limited == 0 {
		t.Error("the server never rate-limited: the test checks too little")
	}
}

// TestPresetGitHub runs examples/presets/github-audit-log.yaml against a server
// that pages and rate-limits as GitHub's organization audit log API does.
func TestPresetGitHub(t *testing.T) {
	api := testutil.StartGitHubAuditLog(t, "acme", "gh-test-token")
	api.SetLimitEvery(4)
	api.Add(auditEvents("doc", 450, time.Now().Add(-time.Hour))...)
	t.Setenv("GITHUB_API_URL", api.URL)
	t.Setenv("GITHUB_ORG", "acme")
	t.Setenv("GITHUB_TOKEN", "gh-test-token")
	archive := runPreset(t, "github-audit-log.yaml")
	waitArchive(t, archive, "_document_id", 450)
	api.Add(auditEvents("late", 30, time.Now().Add(-time.Minute))...)
	waitArchive(t, archive, "_document_id", 480)
	if _, limited := api.Counts(); limited < 2 {
		t.Error("the server rate-limited fewer than twice (primary and secondary): the test checks too little")
	}
}
