package hecsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// fakeIntake records what the source stores, copying the records as the real intake
// does, and fails with storeErr when set.
type fakeIntake struct {
	mu       sync.Mutex
	stored   []component.Records
	storeErr error
	block    chan struct{} // when set, Store waits for it to close
}

var _ component.Intake = (*fakeIntake)(nil)

func (f *fakeIntake) Store(ctx context.Context, recs component.Records) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", component.ErrUnavailable, ctx.Err())
		}
	}
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

func (f *fakeIntake) DeadLetter(context.Context, ...component.Letter) error { return nil }

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

func (f *fakeIntake) setErr(err error) {
	f.mu.Lock()
	f.storeErr = err
	f.mu.Unlock()
}

const testToken = "00000000-1111-2222-3333-444444444444"

type testServer struct {
	src     *Source
	intake  *fakeIntake
	metrics *component.Metrics
	base    string
}

func startSource(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	cfg := NewConfig()
	cfg.Address = "127.0.0.1:0"
	cfg.Tokens = []string{testToken}
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	in := &fakeIntake{}
	m := component.NewMetrics(prometheus.NewRegistry())
	src := New(cfg, component.SourceDeps{Name: "hec", Intake: in, Log: slog.New(slog.DiscardHandler), Metrics: m})
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := src.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &testServer{src: src, intake: in, metrics: m, base: "http://" + src.Addr()}
}

// do sends a request; header pairs follow the body.
func do(t testing.TB, method, url, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

const auth = "Splunk " + testToken

func TestAuthCodes(t *testing.T) {
	ts := startSource(t, nil)
	url := ts.base + "/services/collector/event"
	ev := `{"event":"x"}`
	tests := []struct {
		name   string
		url    string
		header []string
		status int
		body   string
	}{
		{"no token", url, nil, 401, `{"text":"Token is required","code":2}`},
		{"other scheme", url, []string{"Authorization", "Bearer " + testToken}, 401, `{"text":"Invalid authorization","code":3}`},
		{"unknown token", url, []string{"Authorization", "Splunk nope"}, 403, `{"text":"Invalid token","code":4}`},
		{"query token not enabled", url + "?token=" + testToken, nil, 400, `{"text":"Query string authorization is not enabled","code":16}`},
		{"good token", url, []string{"Authorization", auth}, 200, `{"text":"Success","code":0}`},
		{"lower-case scheme", url, []string{"Authorization", "splunk " + testToken}, 200, `{"text":"Success","code":0}`},
		{"basic auth, token as password", url, []string{"Authorization", "Basic eDo" + "wMDAwMDAwMC0xMTExLTIyMjItMzMzMy00NDQ0NDQ0NDQ0NDQ="}, 200, `{"text":"Success","code":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := do(t, "POST", tt.url, ev, tt.header...)
			if status != tt.status || body != tt.body {
				t.Errorf("got %d %s, want %d %s", status, body, tt.status, tt.body)
			}
		})
	}
	if n := len(ts.intake.records()); n != 3 {
		t.Errorf("%d records stored, want 3", n)
	}
	if got := counterValue(t, ts.metrics, "vigil_errors_total", "forbidden"); got != 1 {
		t.Errorf("forbidden errors %v, want 1", got)
	}
}

func TestQueryStringAuth(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.AllowQueryStringAuth = true })
	status, body, _ := do(t, "POST", ts.base+"/services/collector?token="+testToken, `{"event":"x"}`)
	if status != 200 || body != `{"text":"Success","code":0}` {
		t.Errorf("got %d %s", status, body)
	}
	status, _, _ = do(t, "POST", ts.base+"/services/collector?token=wrong", `{"event":"x"}`)
	if status != 403 {
		t.Errorf("wrong query token: %d", status)
	}
}

func TestEndpoints(t *testing.T) {
	ts := startSource(t, nil)
	for _, p := range []string{"/services/collector", "/services/collector/event", "/services/collector/event/1.0"} {
		if status, body, _ := do(t, "POST", ts.base+p, `{"event":"e"}`, "Authorization", auth); status != 200 {
			t.Errorf("%s: %d %s", p, status, body)
		}
	}
	status, body, _ := do(t, "POST", ts.base+"/services/collector/raw?host=h&sourcetype=syslog&index=main&channel=x", "a\nb\n", "Authorization", auth)
	if status != 200 {
		t.Errorf("raw: %d %s", status, body)
	}
	for _, p := range []string{"/services/collector/health", "/services/collector/health/1.0"} {
		status, body, _ := do(t, "GET", ts.base+p, "")
		if status != 200 || body != `{"text":"HEC is healthy","code":17}` {
			t.Errorf("%s: %d %s", p, status, body)
		}
	}
	recs := ts.intake.records()
	if len(recs) != 5 || recs[3] != `{"message":"a","host":{"name":"h"},"splunk":{"sourcetype":"syslog","index":"main"}}` {
		t.Errorf("records %q", recs)
	}
	if status, _, _ := do(t, "POST", ts.base+"/services/collector/ack", `{"acks":[0]}`, "Authorization", auth); status != 400 {
		t.Errorf("ack while disabled: %d", status)
	}
	if status, _, _ := do(t, "GET", ts.base+"/services/collector/event", ""); status != 404 && status != 405 {
		t.Errorf("GET event: %d", status)
	}
}

func TestBadEvents(t *testing.T) {
	ts := startSource(t, nil)
	url := ts.base + "/services/collector/event"
	tests := []struct{ give, want string }{
		{`{"event":"a"}{"event":""}`, `{"text":"Event field cannot be blank","code":13,"invalid-event-number":1}`},
		{`{"event":"a"}{"host":"x"}`, `{"text":"Event field is required","code":12,"invalid-event-number":1}`},
		{`{"event":"a"} nonsense`, `{"text":"Invalid data format","code":6,"invalid-event-number":1}`},
		{``, `{"text":"No data","code":5}`},
	}
	for _, tt := range tests {
		status, body, _ := do(t, "POST", url, tt.give, "Authorization", auth)
		if status != 400 || body != tt.want {
			t.Errorf("%q: got %d %s, want 400 %s", tt.give, status, body, tt.want)
		}
	}
	if n := len(ts.intake.records()); n != 0 {
		t.Errorf("%d records of refused requests stored", n)
	}
}

func TestStoreFailures(t *testing.T) {
	ts := startSource(t, nil)
	url := ts.base + "/services/collector/event"
	for _, err := range []error{component.ErrFull, component.ErrUnavailable, fmt.Errorf("publish: %w", component.ErrUnavailable)} {
		ts.intake.setErr(err)
		status, body, h := do(t, "POST", url, `{"event":"a"}`, "Authorization", auth)
		if status != 503 || body != `{"text":"Server is busy","code":9}` || h.Get("Retry-After") != "5" {
			t.Errorf("%v: got %d %s Retry-After %q", err, status, body, h.Get("Retry-After"))
		}
	}
	ts.intake.setErr(component.ErrTooLarge)
	if status, body, h := do(t, "POST", url, `{"event":"a"}`, "Authorization", auth); status != 413 ||
		body != `{"text":"An event is larger than the intake stream accepts","code":6}` || h.Get("Retry-After") != "" {
		t.Errorf("too large: got %d %s Retry-After %q", status, body, h.Get("Retry-After"))
	}
}

func TestBodyLimitAndGzip(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.MaxBodyBytes = 1 << 10 })
	url := ts.base + "/services/collector/event"
	big := `{"event":"` + strings.Repeat("x", 2000) + `"}`
	if status, _, _ := do(t, "POST", url, big, "Authorization", auth); status != 413 {
		t.Errorf("plain over the limit: %d", status)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(big))
	_ = zw.Close()
	if status, _, _ := do(t, "POST", url, gz.String(), "Authorization", auth, "Content-Encoding", "gzip"); status != 413 {
		t.Errorf("gzip decoding over the limit: %d", status)
	}
	gz.Reset()
	zw = gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"event":"small"}`))
	_ = zw.Close()
	if status, body, _ := do(t, "POST", url, gz.String(), "Authorization", auth, "Content-Encoding", "gzip"); status != 200 {
		t.Errorf("gzip: %d %s", status, body)
	}
	if status, _, _ := do(t, "POST", url, "x", "Authorization", auth, "Content-Encoding", "br"); status != 415 {
		t.Errorf("br: %d", status)
	}
}

const chanA = "0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba"
const chanB = "11111111-2222-3333-4444-555555555555"

func TestIndexerAcknowledgement(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.IndexerAcknowledgement = true; c.MaxChannels = 2 })
	url := ts.base + "/services/collector/event"
	if status, body, _ := do(t, "POST", url, `{"event":"a"}`, "Authorization", auth); status != 400 || body != `{"text":"Data channel is missing","code":10}` {
		t.Errorf("no channel: %d %s", status, body)
	}
	if status, body, _ := do(t, "POST", url, `{"event":"a"}`, "Authorization", auth, HeaderChannel, "not-a-guid"); status != 400 || body != `{"text":"Invalid data channel","code":11}` {
		t.Errorf("bad channel: %d %s", status, body)
	}
	for i := range 3 {
		status, body, _ := do(t, "POST", url, `{"event":"a"}`, "Authorization", auth, HeaderChannel, chanA)
		if want := fmt.Sprintf(`{"text":"Success","code":0,"ackId":%d}`, i); status != 200 || body != want {
			t.Errorf("event %d: %d %s, want %s", i, status, body, want)
		}
	}
	// The channel may also come as a query parameter, on the raw endpoint too.
	status, body, _ := do(t, "POST", ts.base+"/services/collector/raw?channel="+chanB, "line", "Authorization", auth)
	if status != 200 || body != `{"text":"Success","code":0,"ackId":0}` {
		t.Errorf("raw: %d %s", status, body)
	}
	status, body, _ = do(t, "POST", ts.base+"/services/collector/ack?channel="+chanA, `{"acks":[0,2,3,99]}`, "Authorization", auth)
	if status != 200 || body != `{"acks":{"0":true,"2":true,"3":false,"99":false}}` {
		t.Errorf("ack query: %d %s", status, body)
	}
	status, body, _ = do(t, "POST", ts.base+"/services/collector/ack", `{"acks":[0]}`, "Authorization", auth, HeaderChannel, "22222222-2222-3333-4444-555555555555")
	if status != 200 || body != `{"acks":{"0":false}}` {
		t.Errorf("ack query on an unknown channel: %d %s", status, body)
	}
	// max_channels is 2: a third channel is refused while the others are in use.
	status, body, h := do(t, "POST", url, `{"event":"a"}`, "Authorization", auth, HeaderChannel, "33333333-2222-3333-4444-555555555555")
	if status != 503 || body != `{"text":"Server is busy","code":9}` || h.Get("Retry-After") == "" {
		t.Errorf("third channel: %d %s", status, body)
	}
	if status, _, _ := do(t, "POST", ts.base+"/services/collector/ack", `{"acks":"x"}`, "Authorization", auth, HeaderChannel, chanA); status != 400 {
		t.Errorf("malformed ack query: %d", status)
	}
}

func TestAckExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	a := newAcks(1, time.Minute, func() time.Time { return now })
	if !a.admit(chanA) || a.issue(chanA) != 0 || a.issue(chanA) != 1 {
		t.Fatal("first channel")
	}
	if a.admit(chanB) {
		t.Fatal("second channel admitted over max_channels")
	}
	now = now.Add(2 * time.Minute)
	if !a.admit(chanB) {
		t.Fatal("second channel refused after the first expired")
	}
	if got := a.query(chanA, []uint64{0}); got["0"] {
		t.Errorf("expired channel's ack still true: %v", got)
	}
	if a.len() != 1 {
		t.Errorf("%d channels kept", a.len())
	}
}

// TestStopAnswersInFlight: a request being stored when Stop begins gets its true
// outcome; requests after that get 503 code 9.
func TestStopAnswersInFlight(t *testing.T) {
	cfg := NewConfig()
	cfg.Address = "127.0.0.1:0"
	in := &fakeIntake{block: make(chan struct{})}
	src := New(cfg, component.SourceDeps{Name: "hec", Intake: in, Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	url := "http://" + src.Addr() + "/services/collector/event"
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		s, b, _ := do(t, "POST", url, `{"event":"in flight"}`)
		done <- result{s, b}
	}()
	waitFor(t, func() bool { return len(src.slots) == 1 })
	stopped := make(chan error, 1)
	go func() { stopped <- src.Stop(context.Background()) }()
	waitFor(t, func() bool { return !src.Ready() })
	close(in.block)
	if r := <-done; r.status != 200 {
		t.Errorf("in-flight request: %d %s", r.status, r.body)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := len(in.records()); n != 1 {
		t.Errorf("%d records stored", n)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "condition", cond)
}

func counterValue(t testing.TB, m *component.Metrics, name, label string) float64 {
	t.Helper()
	var total float64
	for _, vec := range []*prometheus.CounterVec{m.Errors} {
		ch := make(chan prometheus.Metric, 100)
		vec.Collect(ch)
		close(ch)
		for c := range ch {
			var d dto.Metric
			_ = c.Write(&d)
			for _, l := range d.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == label {
					total += d.GetCounter().GetValue()
				}
			}
		}
	}
	_ = name
	return total
}
