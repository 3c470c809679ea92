package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/admin"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/dlq"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// testToken is the admin.token of dlqNode's admin listener.
const testToken = "test-admin-token-0123456789"

// dlqNode runs the embedded pipeline of `vigil run` (http source on a random port,
// on_malformed: dlq) with its real admin listener (admin.token testToken) and DLQ
// API, and returns the source URL, the admin URL and the archive directory.
func dlqNode(t *testing.T) (*pipeline.Pipeline, string, string, string) {
	t.Helper()
	dir := t.TempDir()
	reg := components.Builtin()
	cfg, err := EmbeddedDefault(reg, dir)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Sources[0].Settings.(*httpsource.Config)
	h.Address, h.OnMalformed = "127.0.0.1:0", "dlq"
	sys := cfg.Sources[1].Settings.(*syslogsource.Config)
	sys.TCP, sys.UDP = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Sinks[0].Settings.(*archivesink.Config).MaxAge = 100 * time.Millisecond
	cfg.Buffer.AckWait = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Registry: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	adm := admin.New(config.Admin{Address: "127.0.0.1:0", Token: testToken}, p.Metrics(), p.Ready, log)
	dlq.NewAPI(p.Stream(), p.Metrics(), log).Mount(adm)
	adm.Handle("GET "+PathStatus, statusHandler(p))
	if err := adm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = adm.Stop(context.Background()) })
	src := "http://" + p.Sources()["http"].(*httpsource.Source).Addr()
	return p, src, "http://" + adm.Addr(), filepath.Join(dir, "archive")
}

func TestDLQCommands(t *testing.T) {
	p, src, adminURL, archive := dlqNode(t)
	t.Setenv(tokenEnv, testToken)
	resp, err := http.Post(src+"/v1/events/myapp", "application/x-ndjson", strings.NewReader("{\"ok\":1}\nline 1\nline 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post: %d", resp.StatusCode)
	}
	testutil.Eventually(t, 20*time.Second, "2 dead letters", func() bool {
		s, err := dlq.Summarize(context.Background(), p.Stream(), dlq.Filter{})
		return err == nil && s.Total == 2
	})

	code, out, errs := runCLI(t, "", "dlq", "list", "--admin", adminURL)
	if code != 0 {
		t.Fatalf("list: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "STAGE") || !strings.Contains(lines[0], "COUNT") {
		t.Fatalf("list output:\n%s", out)
	}
	// Both lines are the same problem: one row, numbers masked.
	row := strings.Fields(lines[1])
	if row[0] != "decode" || row[1] != "http" || !strings.Contains(lines[1], "line N") || row[len(row)-3] != "2" {
		t.Errorf("row: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "TOTAL" || f[1] != "2" {
		t.Errorf("total: %q", lines[2])
	}

	code, out, _ = runCLI(t, "", "dlq", "list", "--admin", adminURL, "--source", "other", "--since", "1h")
	if code != 0 || strings.TrimSpace(out) != "No dead letters." {
		t.Errorf("filtered list: %d %q", code, out)
	}

	code, out, errs = runCLI(t, "", "dlq", "show", "--admin", adminURL, "--stage", "decode", "-n", "5")
	if code != 0 {
		t.Fatalf("show: %d %s", code, errs)
	}
	var entries []dlq.Entry
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e dlq.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("show line %q: %v", l, err)
		}
		entries = append(entries, e)
	}
	if len(entries) != 2 || entries[0].Original != "line 1" || entries[1].Original != "line 2" ||
		entries[0].Dataset != "myapp" || entries[0].Source != "http" || entries[0].Stage != "decode" {
		t.Errorf("entries: %+v", entries)
	}

	// Pages of one letter: the second page starts after the first letter.
	showPage = 1
	defer func() { showPage = dlq.MaxEntries }()
	code, paged, errs := runCLI(t, "", "dlq", "show", "--admin", adminURL, "--stage", "decode", "-n", "5")
	if code != 0 || paged != out {
		t.Errorf("show in pages of 1: %d %q %s, want %q", code, paged, errs, out)
	}
	code, paged, _ = runCLI(t, "", "dlq", "show", "--admin", adminURL, "-n", "1")
	if code != 0 || strings.Count(paged, "\n") != 1 {
		t.Errorf("show -n 1 in pages of 1: %d %q", code, paged)
	}
	showPage = dlq.MaxEntries

	code, out, errs = runCLI(t, "", "dlq", "replay", "--admin", adminURL, "--format", "lines", "--chunk", "1")
	if code != 0 || !strings.Contains(out, "Replayed 2 dead letter(s).") {
		t.Fatalf("replay: %d %q %q", code, out, errs)
	}
	if errs != "" {
		t.Errorf("no progress bar when stderr is not a terminal: %q", errs)
	}
	var docs []map[string]any
	testutil.Eventually(t, 20*time.Second, "3 documents archived", func() bool {
		docs = testutil.ArchiveDocs(t, archive)
		return len(docs) >= 3
	})
	got := map[any]bool{}
	for _, d := range docs {
		got[testutil.Field(d, "event.original")] = true
	}
	if !got["line 1"] || !got["line 2"] {
		t.Errorf("replayed lines not archived: %v", docs)
	}

	code, out, _ = runCLI(t, "", "dlq", "replay", "--admin", adminURL)
	if code != 0 || !strings.Contains(out, "No dead letters to replay.") {
		t.Errorf("second replay: %d %q", code, out)
	}
}

// TestDLQAuth checks that the DLQ API of a node with admin.token answers only with
// the token, that the CLI sends it from --token or VIGIL_ADMIN_TOKEN, and that a
// missing or wrong token is explained.
func TestDLQAuth(t *testing.T) {
	_, _, adminURL, _ := dlqNode(t)
	t.Setenv(tokenEnv, "")

	// Straight to the API: dead letters are not readable, nor replayable, without it.
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, adminURL+dlq.PathEntries+"?limit=10", nil),
		httptest.NewRequest(http.MethodGet, adminURL+dlq.PathSummary, nil),
		httptest.NewRequest(http.MethodPost, adminURL+dlq.PathReplay, nil),
	} {
		req.RequestURI = ""
		req.Header.Set(admin.RequestHeader, "test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: HTTP %d, want 401", req.Method, req.URL.Path, resp.StatusCode)
		}
	}

	code, _, errs := runCLI(t, "", "dlq", "list", "--admin", adminURL)
	if code != 1 || !strings.Contains(errs, "HTTP 401: the node needs its admin.token: pass --token or set VIGIL_ADMIN_TOKEN") {
		t.Errorf("no token: %d %q", code, errs)
	}
	code, _, errs = runCLI(t, "", "dlq", "show", "--admin", adminURL, "--token", "not-the-token-at-all")
	if code != 1 || !strings.Contains(errs, "HTTP 401: the node refused the token given") || strings.Contains(errs, "not-the-token-at-all") {
		t.Errorf("wrong token: %d %q", code, errs)
	}
	code, out, errs := runCLI(t, "", "dlq", "list", "--admin", adminURL, "--token", testToken)
	if code != 0 || !strings.Contains(out, "No dead letters.") {
		t.Errorf("--token: %d %q %q", code, out, errs)
	}
	t.Setenv(tokenEnv, testToken)
	code, out, errs = runCLI(t, "", "dlq", "replay", "--admin", adminURL)
	if code != 0 || !strings.Contains(out, "No dead letters to replay.") {
		t.Errorf("%s: %d %q %q", tokenEnv, code, out, errs)
	}
}

func TestDLQErrors(t *testing.T) {
	// A node that answers with an error body.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"dlq: VIGIL_DLQ: stream unavailable"}` + "\n"))
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"node error", []string{"dlq", "list", "--admin", srv.URL}, 1, "stream unavailable"},
		{"show node error", []string{"dlq", "show", "--admin", srv.URL}, 1, "stream unavailable"},
		{"unreachable", []string{"dlq", "list", "--admin", closedURL}, 1, "cannot reach the admin API"},
		{"bad since", []string{"dlq", "list", "--admin", srv.URL, "--since", "soon"}, 2, "--since"},
		{"bad admin", []string{"dlq", "list", "--admin", "ftp://x"}, 2, "--admin"},
		{"bad limit", []string{"dlq", "show", "--admin", srv.URL, "-n", "0"}, 2, "--limit"},
		{"bad chunk", []string{"dlq", "replay", "--admin", srv.URL, "--chunk", "0"}, 2, "--chunk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCLI(t, "", tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, tt.code, tt.want)
			}
		})
	}
}
