package httpsource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
)

// fakeIntake records what the source stores, copying the records as the real intake
// does, and fails with storeErr/dlqErr when set.
type fakeIntake struct {
	mu       sync.Mutex
	stored   []component.Records
	letters  []component.Letter
	storeErr error
	dlqErr   error
}

var _ component.Intake = (*fakeIntake)(nil)

func (f *fakeIntake) Store(_ context.Context, recs component.Records) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.storeErr != nil {
		return f.storeErr
	}
	cp := recs
	cp.Records = nil
	for _, r := range recs.Records {
		cp.Records = append(cp.Records, bytes.Clone(r))
	}
	f.stored = append(f.stored, cp)
	return nil
}

func (f *fakeIntake) DeadLetter(_ context.Context, letters ...component.Letter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dlqErr != nil {
		return f.dlqErr
	}
	for _, l := range letters {
		l.Original = bytes.Clone(l.Original)
		f.letters = append(f.letters, l)
	}
	return nil
}

func (f *fakeIntake) records() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.stored {
		for _, r := range s.Records {
			out = append(out, string(r))
		}
	}
	return out
}

type testServer struct {
	src    *Source
	intake *fakeIntake
	url    string // http://addr/v1/events/
}

// startSource starts a source named "apps" on 127.0.0.1:0 and stops it at cleanup.
func startSource(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	cfg := NewConfig()
	cfg.Address = "127.0.0.1:0"
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	in := &fakeIntake{}
	src := New(cfg, component.SourceDeps{
		Name:    "apps",
		Intake:  in,
		Log:     slog.New(slog.DiscardHandler),
		Metrics: component.NewMetrics(prometheus.NewRegistry()),
	})
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := src.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &testServer{src: src, intake: in, url: "http://" + src.Addr() + "/v1/events/"}
}

type reply struct {
	code   int
	header http.Header
	body   result
	raw    string
}

func (ts *testServer) post(t *testing.T, name, contentType string, body io.Reader, hdr map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.url+name, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return r
}

func TestAccept(t *testing.T) {
	ts := startSource(t, nil)
	r := ts.post(t, "apps", "application/x-ndjson", strings.NewReader("{\"a\":1}\n{\"b\":2}\n"), nil)
	if r.code != 200 || r.body.Accepted != 2 || r.body.DeadLettered != 0 || r.body.Error != "" {
		t.Fatalf("got %d %s", r.code, r.raw)
	}
	if got := ts.intake.records(); strings.Join(got, "|") != `{"a":1}|{"b":2}` {
		t.Errorf("stored %q", got)
	}
	st := ts.intake.stored[0]
	if st.Dataset != "" || st.Format != "" || st.Received.IsZero() {
		t.Errorf("records meta: %+v", st)
	}
	r = ts.post(t, "apps", "text/plain", strings.NewReader("line one\nline two"), nil)
	if r.code != 200 || r.body.Accepted != 2 || ts.intake.stored[1].Format != "lines" {
		t.Errorf("text: %d %s %+v", r.code, r.raw, ts.intake.stored[1])
	}
}

func TestAuth(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.Tokens = []string{"first-token", "second-token"} })
	body := func() io.Reader { return strings.NewReader(`{"a":1}`) }
	tests := []struct {
		name string
		auth string
		want int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"basic", "Basic Zmlyc3QtdG9rZW46", http.StatusUnauthorized},
		{"lowercase scheme", "bearer first-token", http.StatusOK},
		{"wrong", "Bearer nope", http.StatusForbidden},
		{"prefix of a token", "Bearer first", http.StatusForbidden},
		{"token plus more", "Bearer first-token2", http.StatusForbidden},
		{"first", "Bearer first-token", http.StatusOK},
		{"second", "Bearer second-token", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			r := ts.post(t, "apps", "application/json", body(), hdr)
			if r.code != tt.want {
				t.Fatalf("got %d %s, want %d", r.code, r.raw, tt.want)
			}
			if tt.want == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") != `Bearer realm="vigil"` {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(r.raw, "first") || strings.Contains(r.raw, "nope") {
				t.Errorf("answer echoes a token: %s", r.raw)
			}
		})
	}
	if n := len(ts.intake.records()); n != 3 {
		t.Errorf("stored %d records, want 3 (only the authorized requests)", n)
	}
}

// The token check must not stop at the first token that matches or differ in work by
// how long a prefix matches: it hashes the presented token and compares it with every
// configured hash. Check that the loop covers all tokens and uses the hashes.
func TestAuthConstantTimePath(t *testing.T) {
	s := New(&Config{Tokens: []string{"a", "b", "c"}}, component.SourceDeps{
		Name: "apps", Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry()),
	})
	if len(s.tokens) != 3 {
		t.Fatalf("%d token hashes", len(s.tokens))
	}
	for _, tok := range []string{"a", "b", "c"} {
		req := httptest.NewRequest(http.MethodPost, "/v1/events/apps", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if !s.authorized(httptest.NewRecorder(), req) {
			t.Errorf("token %q refused", tok)
		}
	}
	// Hashing first makes every compared value 32 bytes, whatever the token length.
	req := httptest.NewRequest(http.MethodPost, "/v1/events/apps", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 10000))
	w := httptest.NewRecorder()
	if s.authorized(w, req) || w.Code != http.StatusForbidden {
		t.Errorf("long token: %d", w.Code)
	}
}

func TestNoTokensNoAuth(t *testing.T) {
	ts := startSource(t, nil)
	r := ts.post(t, "apps", "application/json", strings.NewReader(`{}`), map[string]string{"Authorization": "Bearer whatever"})
	if r.code != 200 {
		t.Errorf("got %d %s", r.code, r.raw)
	}
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBodyLimits(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.MaxBodyBytes = 4 << 10 })
	line := `{"msg":"` + strings.Repeat("x", 100) + `"}` + "\n"
	small := strings.Repeat(line, 10)        // ~1 KiB
	big := strings.Repeat(line, 60)          // ~6 KiB
	bomb := bytes.Repeat([]byte("A"), 1<<20) // 1 MiB that gzips to about 1 KiB

	t.Run("content-length over limit", func(t *testing.T) {
		r := ts.post(t, "apps", "application/x-ndjson", strings.NewReader(big), nil)
		if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(r.body.Error, "over the 4096 byte limit") {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("chunked over limit", func(t *testing.T) {
		// No Content-Length: the limit applies while reading.
		r := ts.post(t, "apps", "application/x-ndjson", io.MultiReader(strings.NewReader(big)), nil)
		if r.code != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("gzip within limit", func(t *testing.T) {
		r := ts.post(t, "apps", "application/x-ndjson", bytes.NewReader(gzipped(t, []byte(small))), map[string]string{"Content-Encoding": "gzip"})
		if r.code != 200 || r.body.Accepted != 10 {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("x-gzip, upper case", func(t *testing.T) {
		r := ts.post(t, "apps", "application/x-ndjson", bytes.NewReader(gzipped(t, []byte(small))), map[string]string{"Content-Encoding": "X-GZIP"})
		if r.code != 200 {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("gzip bomb", func(t *testing.T) {
		z := gzipped(t, bomb)
		if len(z) > 4<<10 {
			t.Fatalf("bomb is %d bytes compressed", len(z))
		}
		r := ts.post(t, "apps", "text/plain", bytes.NewReader(z), map[string]string{"Content-Encoding": "gzip"})
		if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(r.body.Error, "decoded body is over the 4096 byte limit") {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("decoded just over the limit", func(t *testing.T) {
		r := ts.post(t, "apps", "text/plain", bytes.NewReader(gzipped(t, bytes.Repeat([]byte("a"), 4<<10+1))), map[string]string{"Content-Encoding": "gzip"})
		if r.code != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("not gzip", func(t *testing.T) {
		r := ts.post(t, "apps", "text/plain", strings.NewReader("plain text"), map[string]string{"Content-Encoding": "gzip"})
		if r.code != http.StatusBadRequest || !strings.HasPrefix(r.body.Error, "gzip body:") {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("truncated gzip", func(t *testing.T) {
		z := gzipped(t, []byte(small))
		r := ts.post(t, "apps", "text/plain", bytes.NewReader(z[:len(z)-10]), map[string]string{"Content-Encoding": "gzip"})
		if r.code != http.StatusBadRequest || !strings.HasPrefix(r.body.Error, "reading body:") {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("unknown encoding", func(t *testing.T) {
		r := ts.post(t, "apps", "text/plain", strings.NewReader("x"), map[string]string{"Content-Encoding": "br"})
		if r.code != http.StatusUnsupportedMediaType || r.body.Error != `Content-Encoding "br" is not supported; use gzip or none` {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	t.Run("identity", func(t *testing.T) {
		r := ts.post(t, "apps", "text/plain", strings.NewReader("x"), map[string]string{"Content-Encoding": "identity"})
		if r.code != 200 {
			t.Errorf("got %d %s", r.code, r.raw)
		}
	})
	if n := len(ts.intake.stored); n != 3 {
		t.Errorf("%d stores, want 3 (the accepted requests only)", n)
	}
}

func TestPaths(t *testing.T) {
	ts := startSource(t, nil)
	r := ts.post(t, "other", "application/json", strings.NewReader(`{}`), nil)
	if r.code != http.StatusNotFound || r.body.Error != "this listener serves /v1/events/apps" {
		t.Errorf("wrong name: %d %s", r.code, r.raw)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.url+"apps", nil)
	r = do(t, req)
	if r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("GET: %d %v", r.code, r.header)
	}
	if len(ts.intake.stored) != 0 {
		t.Errorf("stored %+v", ts.intake.stored)
	}
}

func TestPathDataset(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.PathDataset = true })
	r := ts.post(t, "aws.cloudtrail", "application/json", strings.NewReader(`{}`), nil)
	if r.code != 200 || ts.intake.stored[0].Dataset != "aws.cloudtrail" {
		t.Errorf("got %d %s, stored %+v", r.code, r.raw, ts.intake.stored)
	}
	r = ts.post(t, "bad..name", "application/json", strings.NewReader(`{}`), nil)
	if r.code != http.StatusBadRequest || !strings.Contains(r.body.Error, "not a valid dataset name") {
		t.Errorf("bad dataset: %d %s", r.code, r.raw)
	}
}

func TestMalformedReject(t *testing.T) {
	ts := startSource(t, nil)
	r := ts.post(t, "apps", "application/x-ndjson", strings.NewReader("{\"a\":1}\n{\"b\":\n{\"c\":3}\n"), nil)
	want := "line 2: invalid JSON at byte 5: unexpected end of input (nothing of this request was stored)"
	if r.code != http.StatusBadRequest || r.body.Error != want || r.body.Accepted != 0 {
		t.Errorf("got %d %s\nwant error %q", r.code, r.raw, want)
	}
	if len(ts.intake.stored) != 0 || len(ts.intake.letters) != 0 {
		t.Errorf("something was stored: %+v %+v", ts.intake.stored, ts.intake.letters)
	}
	for _, body := range []string{"", "\n \n", "[]"} {
		r = ts.post(t, "apps", "application/json", strings.NewReader(body), nil)
		if r.code != http.StatusBadRequest || r.body.Error != "the body holds no events" {
			t.Errorf("empty body %q: %d %s", body, r.code, r.raw)
		}
	}
	r = ts.post(t, "apps", "application/json", strings.NewReader(`[{"a":1},{"b":}]`), nil)
	if r.code != http.StatusBadRequest || !strings.HasPrefix(r.body.Error, "malformed JSON array: invalid JSON at byte 14") {
		t.Errorf("bad array: %d %s", r.code, r.raw)
	}
}

func TestMalformedDLQ(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.OnMalformed = "dlq"; c.PathDataset = true })
	r := ts.post(t, "web", "application/x-ndjson", strings.NewReader("{\"a\":1}\nnot json\n{\"c\":3}\n[4]\n"), nil)
	if r.code != 200 || r.body.Accepted != 2 || r.body.DeadLettered != 2 {
		t.Fatalf("got %d %s", r.code, r.raw)
	}
	if got := ts.intake.records(); strings.Join(got, "|") != `{"a":1}|{"c":3}` {
		t.Errorf("stored %q", got)
	}
	l := ts.intake.letters
	if len(l) != 2 || string(l[0].Original) != "not json" || string(l[1].Original) != "[4]" {
		t.Fatalf("letters %+v", l)
	}
	for _, x := range l {
		if x.Stage != "decode" || x.Dataset != "web" || x.Time.IsZero() || !strings.HasPrefix(x.Reason, "line ") {
			t.Errorf("letter %+v", x)
		}
	}
	// Everything bad: all dead-lettered, nothing stored, still a 200.
	r = ts.post(t, "web", "application/json", strings.NewReader(`[1,2]`), nil)
	if r.code != 200 || r.body.Accepted != 0 || r.body.DeadLettered != 2 {
		t.Errorf("all bad: %d %s", r.code, r.raw)
	}
}

func TestStoreErrors(t *testing.T) {
	tests := []struct {
		name       string
		storeErr   error
		dlqErr     error
		want       int
		retryAfter string
	}{
		{"full", fmt.Errorf("publish: %w", component.ErrFull), nil, http.StatusTooManyRequests, "7"},
		{"unavailable", fmt.Errorf("publish: %w", component.ErrUnavailable), nil, http.StatusServiceUnavailable, "7"},
		{"other error", io.ErrUnexpectedEOF, nil, http.StatusServiceUnavailable, "7"},
		{"too large", fmt.Errorf("publish: %w", component.ErrTooLarge), nil, http.StatusRequestEntityTooLarge, ""},
		{"dlq full", nil, fmt.Errorf("dlq: %w", component.ErrFull), http.StatusTooManyRequests, "7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startSource(t, func(c *Config) { c.OnMalformed = "dlq"; c.RetryAfter = 7 * time.Second })
			ts.intake.storeErr, ts.intake.dlqErr = tt.storeErr, tt.dlqErr
			r := ts.post(t, "apps", "application/x-ndjson", strings.NewReader("{\"a\":1}\nbad\n"), nil)
			if r.code != tt.want || r.header.Get("Retry-After") != tt.retryAfter {
				t.Errorf("got %d Retry-After %q %s; want %d %q", r.code, r.header.Get("Retry-After"), r.raw, tt.want, tt.retryAfter)
			}
			if r.body.Accepted != 0 || r.body.Error == "" {
				t.Errorf("answer %s claims success", r.raw)
			}
			if strings.Contains(r.raw, "publish") || strings.Contains(r.raw, "unexpected EOF") {
				t.Errorf("answer leaks the internal error: %s", r.raw)
			}
		})
	}
}

func TestClosing(t *testing.T) {
	ts := startSource(t, nil)
	if !ts.src.Ready() {
		t.Error("not ready after Start")
	}
	// A request that arrives once Stop has begun gets 503; handleEvents is called
	// directly because the listener is closed by then.
	ts.src.listener.StartClosing()
	if ts.src.Ready() {
		t.Error("ready while closing")
	}
	w := httptest.NewRecorder()
	ts.src.handleEvents(w, httptest.NewRequest(http.MethodPost, "/v1/events/apps", strings.NewReader(`{}`)))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "5" || w.Header().Get("Connection") != "close" {
		t.Errorf("got %d %v", w.Code, w.Header())
	}
	if len(ts.intake.stored) != 0 {
		t.Error("stored while closing")
	}
}

func TestStopWithoutStartAndTwice(t *testing.T) {
	s := New(NewConfig(), component.SourceDeps{Name: "x", Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop without Start: %v", err)
	}
	ts := startSource(t, nil)
	if !strings.HasPrefix(ts.src.Describe(), "apps on http://127.0.0.1:") {
		t.Errorf("Describe = %q", ts.src.Describe())
	}
	if err := ts.src.Stop(context.Background()); err != nil {
		t.Errorf("first Stop: %v", err)
	}
	if ts.src.Ready() {
		t.Error("ready after Stop")
	}
	// The cleanup stops it a second time.
}

func TestStartFailsOnBusyAddress(t *testing.T) {
	ts := startSource(t, nil)
	cfg := NewConfig()
	cfg.Address = ts.src.Addr()
	s := New(cfg, component.SourceDeps{Name: "dup", Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "http source dup") {
		t.Errorf("Start on a busy address: %v", err)
		_ = s.Stop(context.Background())
	}
}
