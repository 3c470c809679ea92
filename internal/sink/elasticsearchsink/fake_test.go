package elasticsearchsink

import (
	"bufio"
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
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/internal/component"
)

// bulkAction is one action of a bulk request as a fake server read it.
type bulkAction struct {
	Op    string
	Index string
	ID    string
	Doc   map[string]any
	Raw   []byte
}

// bulkRequest is one request a fake server received.
type bulkRequest struct {
	Header  http.Header
	Gzipped bool
	Actions []bulkAction
}

// itemAnswer is what the fake answers for one action: a status and, for errors,
// the error type and reason.
type itemAnswer struct {
	Status int
	Type   string
	Reason string
}

// fakeES follows Elasticsearch's documented bulk API: POST /_bulk with NDJSON
// action/document pairs, answered 200 with {"took","errors","items":[...]}, one
// item per action in order, each keyed by its action with _index, _id, status and,
// for failures, error {type, reason}. answer decides each item; whole, when set,
// may answer the whole request with a status instead.
type fakeES struct {
	t      testing.TB
	srv    *httptest.Server
	answer func(req int, a bulkAction) itemAnswer
	whole  func(req int, r *bulkRequest) int

	mu       sync.Mutex
	requests []*bulkRequest
	other    []string // non-bulk requests: "METHOD path"
}

func newFakeES(t testing.TB, answer func(req int, a bulkAction) itemAnswer) *fakeES {
	f := &fakeES{t: t, answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeES) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/_bulk" || r.Method != http.MethodPost {
		f.mu.Lock()
		f.other = append(f.other, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"acknowledged":true}`)
		return
	}
	var body io.Reader = r.Body
	req := &bulkRequest{Header: r.Header.Clone()}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, `{"error":"bad gzip"}`, 400)
			return
		}
		body, req.Gzipped = zr, true
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var action map[string]map[string]string
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			http.Error(w, fmt.Sprintf(`{"error":"bad action line %q"}`, sc.Text()), 400)
			return
		}
		var a bulkAction
		for op, meta := range action {
			a.Op, a.Index, a.ID = op, meta["_index"], meta["_id"]
		}
		if !sc.Scan() {
			http.Error(w, `{"error":"action without document"}`, 400)
			return
		}
		a.Raw = bytes.Clone(sc.Bytes())
		if err := json.Unmarshal(a.Raw, &a.Doc); err != nil {
			http.Error(w, `{"error":"bad document"}`, 400)
			return
		}
		req.Actions = append(req.Actions, a)
	}
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	if f.whole != nil {
		if code := f.whole(n, req); code != 0 {
			w.WriteHeader(code)
			_, _ = fmt.Fprintf(w, `{"error":{"type":"whole_request","reason":"status %d"},"status":%d}`, code, code)
			return
		}
	}
	type item struct {
		Index  string         `json:"_index"`
		ID     string         `json:"_id"`
		Status int            `json:"status"`
		Result string         `json:"result,omitempty"`
		Error  map[string]any `json:"error,omitempty"`
	}
	resp := struct {
		Took   int               `json:"took"`
		Errors bool              `json:"errors"`
		Items  []map[string]item `json:"items"`
	}{Took: 3}
	for _, a := range req.Actions {
		ans := itemAnswer{Status: 201}
		if f.answer != nil {
			ans = f.answer(n, a)
		}
		it := item{Index: a.Index, ID: a.ID, Status: ans.Status}
		if ans.Status >= 300 {
			resp.Errors = true
			it.Error = map[string]any{"type": ans.Type, "reason": ans.Reason, "index": a.Index}
		} else {
			it.Result = "created"
		}
		resp.Items = append(resp.Items, map[string]item{a.Op: it})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *fakeES) Requests() []*bulkRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*bulkRequest(nil), f.requests...)
}

// harness is a sink under test with its metrics and dead letters.
type harness struct {
	sink    *Sink
	metrics *component.Metrics

	mu      sync.Mutex
	letters []component.Letter
}

func newHarness(t testing.TB, cfg *Config) *harness {
	t.Helper()
	return newFlavourHarness(t, cfg, FlavourElasticsearch)
}

// newFlavourHarness is newHarness for a flavour (opensearch) of the sink.
func newFlavourHarness(t testing.TB, cfg *Config, flavour string) *harness {
	t.Helper()
	h := &harness{metrics: component.NewMetrics(prometheus.NewRegistry())}
	deps := component.SinkDeps{Name: "search", Log: slog.New(slog.DiscardHandler), Metrics: h.metrics,
		DeadLetter: func(_ context.Context, letters ...component.Letter) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, l := range letters {
				l.Original = bytes.Clone(l.Original)
				h.letters = append(h.letters, l)
			}
			return nil
		}}
	s, err := New(cfg, flavour, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	h.sink = s
	return h
}

func (h *harness) Letters() []component.Letter {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]component.Letter(nil), h.letters...)
}

func (h *harness) counter(v *prometheus.CounterVec, labels ...string) float64 {
	var m dto.Metric
	if err := v.WithLabelValues(append([]string{"sink", "search"}, labels...)...).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// outcome records the Done calls of one batch.
type outcome struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (o *outcome) done(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	o.err = err
}

func (o *outcome) get() (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls, o.err
}

// docs returns n ECS documents of dataset with event.id "<prefix>-<i>".
func docs(dataset, prefix string, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"@timestamp":"2026-03-04T05:06:07.123456789Z","event":{"dataset":%q,"id":"%s-%d","original":"x"},"message":"m %d"}`+"\n",
			dataset, prefix, i, i)
	}
	return b.Bytes()
}

func batch(dataset string, seq uint64, d []byte, n int, o *outcome) *component.Batch {
	return component.NewBatch(dataset, seq, time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC), d, n, o.done)
}

func testConfig(urls ...string) *Config {
	c := NewConfig()
	c.URLs = urls
	c.Batch.MaxWait = 20 * time.Millisecond
	c.Retry = Retry{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	c.RequestTimeout = 5 * time.Second
	return c
}

func idNum(id string) int {
	var n int
	_, _ = fmt.Sscanf(id[strings.LastIndexByte(id, '-')+1:], "%d", &n)
	return n
}
