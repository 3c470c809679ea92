package pollsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// intake is a component.Intake that keeps what it stored and can be made to fail.
type intake struct {
	mu      sync.Mutex
	failAt  int // the n-th Store call (1-based) fails; 0: none
	calls   int
	records []json.RawMessage
}

func (in *intake) Store(_ context.Context, recs component.Records) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls++
	if in.calls == in.failAt {
		return fmt.Errorf("test: %w", component.ErrUnavailable)
	}
	for _, r := range recs.Records {
		in.records = append(in.records, append(json.RawMessage(nil), r...))
	}
	return nil
}

func (in *intake) DeadLetter(context.Context, ...component.Letter) error { return nil }

// ids returns how often each value at field was stored.
func (in *intake) ids(t *testing.T, field string) map[string]int {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	out := map[string]int{}
	for _, r := range in.records {
		var m map[string]any
		if err := json.Unmarshal(r, &m); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprint(m[field])]++
	}
	return out
}

// newSource builds a source without its polling loop: the tests call run.
func newSource(t *testing.T, cfg *Config, in component.Intake, dataDir string) *Source {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, component.SourceDeps{Name: "api", Source: &config.Source{Name: "api", Type: "poll", Format: "json"},
		Intake: in, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: component.NewMetrics(prometheus.NewRegistry()),
		DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	return s
}

func events(prefix string, n int, start time.Time, step time.Duration) []testutil.AuditEvent {
	evs := make([]testutil.AuditEvent, n)
	for i := range evs {
		evs[i] = testutil.AuditEvent{ID: fmt.Sprintf("%s%03d", prefix, i), Time: start.Add(time.Duration(i) * step)}
	}
	return evs
}

func oktaConfig(api *testutil.AuditAPI, limit int) *Config {
	c := NewConfig()
	c.URL = api.URL + "/api/v1/logs?since={cursor}&limit=" + strconv.Itoa(limit)
	c.Headers = map[string]string{"Authorization": "SSWS secret-token"}
	c.IDPath = "$.uuid"
	c.Cursor = Cursor{From: "$.published", Initial: "2024-01-01T00:00:00Z", Overlap: time.Minute, Format: "rfc3339"}
	c.Pagination.Type = "link"
	c.RetryBackoff = 10 * time.Millisecond
	return c
}

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

// TestCursorAndDedup: a run follows the Link pages to the end and moves the cursor
// to the newest record; the next run asks from the cursor less the overlap and
// stores only what is new, including a new record at the cursor's own time.
func TestCursorAndDedup(t *testing.T) {
	// Without id_path a record is known by its bytes.
	for _, idPath := range []string{"$.uuid", ""} {
		t.Run("id_path="+idPath, func(t *testing.T) { testCursorAndDedup(t, idPath) })
	}
}

func testCursorAndDedup(t *testing.T, idPath string) {
	api := testutil.StartOktaSystemLog(t, "secret-token")
	api.Add(events("a", 25, t0, time.Second)...)
	in := &intake{}
	dir := t.TempDir()
	cfg := oktaConfig(api, 10)
	cfg.IDPath = idPath
	s := newSource(t, cfg, in, dir)
	if err := s.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(in.ids(t, "uuid")); got != 25 {
		t.Fatalf("first run stored %d records, want 25", got)
	}
	newest := t0.Add(24 * time.Second)
	if !s.st.Cursor.Equal(newest) || s.st.Pending != nil {
		t.Fatalf("cursor %v pending %+v, want %v and none", s.st.Cursor, s.st.Pending, newest)
	}
	// Persisted: a new source reads the same cursor.
	if st, err := loadState(s.dir); err != nil || !st.Cursor.Equal(newest) {
		t.Fatalf("persisted cursor %v (%v), want %v", st.Cursor, err, newest)
	}
	api.Add(testutil.AuditEvent{ID: "b-same-time", Time: newest}, testutil.AuditEvent{ID: "b-later", Time: newest.Add(time.Second)})
	s2 := newSource(t, cfg, in, dir)
	if got := s2.firstURL(); got != api.URL+"/api/v1/logs?since=2024-03-01T09%3A59%3A24Z&limit=10" {
		t.Errorf("first URL %s: want since = cursor less the overlap", got)
	}
	if err := s2.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := in.ids(t, "uuid")
	if len(ids) != 27 {
		t.Fatalf("stored %d distinct records, want 27", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
}

// TestCursorOnlyAfterStore: when storing a page fails, the run stops there and the
// persisted place is the page after the last one stored; the next run resumes
// there, and nothing is lost or stored twice.
func TestCursorOnlyAfterStore(t *testing.T) {
	api := testutil.StartOktaSystemLog(t, "secret-token")
	api.Add(events("a", 35, t0, time.Second)...)
	in := &intake{failAt: 3}
	dir := t.TempDir()
	s := newSource(t, oktaConfig(api, 10), in, dir)
	if err := s.run(context.Background()); !errors.Is(err, component.ErrUnavailable) {
		t.Fatalf("run: %v, want the store's error", err)
	}
	st, err := loadState(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending == nil || !st.Cursor.IsZero() || len(st.Seen) != 20 {
		t.Fatalf("persisted %+v: want the run pending after two pages, 20 ids seen, no cursor yet", st)
	}
	s2 := newSource(t, oktaConfig(api, 10), in, dir)
	if err := s2.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := in.ids(t, "uuid")
	if len(ids) != 35 {
		t.Fatalf("stored %d distinct records, want 35", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
}

// TestPageCap: a run stops at max_pages and the next one goes on from there.
func TestPageCap(t *testing.T) {
	api := testutil.StartOktaSystemLog(t, "secret-token")
	api.Add(events("a", 50, t0, time.Second)...)
	in := &intake{}
	cfg := oktaConfig(api, 10)
	cfg.MaxPages = 2
	s := newSource(t, cfg, in, t.TempDir())
	if err := s.run(context.Background()); !errors.Is(err, errPageCap) {
		t.Fatalf("run: %v, want the page cap", err)
	}
	if n := len(in.ids(t, "uuid")); n != 20 {
		t.Fatalf("stored %d after a capped run, want 20", n)
	}
	for range 3 {
		_ = s.run(context.Background())
	}
	if n := len(in.ids(t, "uuid")); n != 50 {
		t.Fatalf("stored %d, want 50", n)
	}
}

// TestTokenPagination follows a next-page token in the body (Google's
// nextPageToken style), records under $.items[*].
func TestTokenPagination(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("pageToken"))
		out := map[string]any{"kind": "admin#reports#activities"}
		var items []map[string]any
		for i := range 3 {
			items = append(items, map[string]any{"id": map[string]any{"uniqueQualifier": strconv.Itoa(page*3 + i)}})
		}
		out["items"] = items
		if page < 3 {
			out["nextPageToken"] = strconv.Itoa(page + 1)
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	cfg := NewConfig()
	cfg.URL = srv.URL + "/activity?maxResults=3"
	cfg.Records = "$.items[*]"
	cfg.IDPath = "$.id.uniqueQualifier"
	cfg.Pagination = Pagination{Type: "token", TokenPath: "$.nextPageToken", TokenParam: "pageToken"}
	in := &intake{}
	s := newSource(t, cfg, in, t.TempDir())
	if err := s.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(in.records); n != 12 {
		t.Fatalf("stored %d, want 12 (4 pages of 3)", n)
	}
}

// TestOffsetPagination pages by offset and limit until a short page.
func TestOffsetPagination(t *testing.T) {
	const total = 23
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		lim, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var out []map[string]int
		for i := off; i < min(off+lim, total); i++ {
			out = append(out, map[string]int{"n": i})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": out})
	}))
	defer srv.Close()
	cfg := NewConfig()
	cfg.URL = srv.URL + "/events"
	cfg.Records = "$.data"
	cfg.Pagination = Pagination{Type: "offset", OffsetParam: "offset", LimitParam: "limit", Limit: 5}
	in := &intake{}
	s := newSource(t, cfg, in, t.TempDir())
	if err := s.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := in.ids(t, "n"); len(got) != total {
		t.Fatalf("stored %d distinct, want %d", len(got), total)
	}
}

// TestRetries: 429 with Retry-After is waited out, a 503 is retried with backoff,
// and a request still failing after max_retries ends the run with an error.
func TestRetries(t *testing.T) {
	var mu sync.Mutex
	var hits []time.Time
	fail := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, time.Now())
		n := len(hits)
		f := fail
		mu.Unlock()
		switch {
		case f > 0:
			w.WriteHeader(http.StatusBadGateway)
		case n == 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case n == 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, `[{"n":1}]`)
		}
	}))
	defer srv.Close()
	cfg := NewConfig()
	cfg.URL = srv.URL + "/x"
	cfg.RetryBackoff = 10 * time.Millisecond
	in := &intake{}
	s := newSource(t, cfg, in, t.TempDir())
	if err := s.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 3 || hits[1].Sub(hits[0]) < 900*time.Millisecond {
		t.Fatalf("%d requests, second %s after the first: want 3, and Retry-After: 1 honoured", len(hits), hits[1].Sub(hits[0]))
	}
	fail, hits = 1, nil
	mu.Unlock()
	cfg.MaxRetries = 2
	if err := s.run(context.Background()); err == nil {
		t.Fatal("want an error after the retries")
	}
	mu.Lock()
	if len(hits) != 3 {
		t.Fatalf("%d requests, want 1 + 2 retries", len(hits))
	}
	// A plain 403 is not retried.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusForbidden)
	})
	hits = nil
	mu.Unlock()
	err := s.run(context.Background())
	mu.Lock()
	if err == nil || len(hits) != 1 {
		t.Fatalf("403: %v after %d requests, want an error after 1", err, len(hits))
	}
}

// TestOAuth2ClientCredentials: the token is fetched with the client's credentials,
// reused, and fetched again after a 401.
func TestOAuth2ClientCredentials(t *testing.T) {
	var mu sync.Mutex
	issued := 0
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if err := r.ParseForm(); err != nil || !ok || id != "vigil" || secret != "s3cret" ||
			r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "logs.read" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		mu.Lock()
		issued++
		n := issued
		mu.Unlock()
		fmt.Fprintf(w, `{"access_token":"tok%d","token_type":"Bearer","expires_in":3600}`, n)
	}))
	defer tokens.Close()
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		n := len(seen)
		mu.Unlock()
		if n == 2 { // the first token is revoked after one use
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `[{"n":1}]`)
	}))
	defer api.Close()
	cfg := NewConfig()
	cfg.URL = api.URL + "/logs"
	cfg.Auth = Auth{Type: "oauth2", TokenURL: tokens.URL, ClientID: "vigil", ClientSecret: "s3cret", Scopes: []string{"logs.read"}}
	s := newSource(t, cfg, &intake{}, t.TempDir())
	for range 2 {
		if err := s.run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"Bearer tok1", "Bearer tok1", "Bearer tok2"}
	if fmt.Sprint(seen) != fmt.Sprint(want) || issued != 2 {
		t.Fatalf("authorizations %q with %d tokens issued, want %q and 2", seen, issued, want)
	}
}

// TestStartStop runs the loop: the first run starts at once, Stop ends it.
func TestStartStop(t *testing.T) {
	api := testutil.StartOktaSystemLog(t, "secret-token")
	api.Add(events("a", 5, t0, time.Second)...)
	in := &intake{}
	cfg := oktaConfig(api, 10)
	s, err := New(cfg, component.SourceDeps{Name: "api", Source: &config.Source{Name: "api"}, Intake: in,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: component.NewMetrics(prometheus.NewRegistry()), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil { // safe without Start
		t.Fatal(err)
	}
	s, _ = New(cfg, component.SourceDeps{Name: "api", Source: &config.Source{Name: "api"}, Intake: in,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: component.NewMetrics(prometheus.NewRegistry()), DataDir: t.TempDir()})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "first run stored", func() bool { return len(in.ids(t, "uuid")) == 5 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil || s.Ready() {
		t.Fatalf("stop: %v, ready %v", err, s.Ready())
	}
	_ = s.Stop(ctx)
}
