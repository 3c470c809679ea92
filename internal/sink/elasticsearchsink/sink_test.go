package elasticsearchsink

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

const wait = 15 * time.Second

// TestPerItemOutcomes sends one batch whose items the server answers with a mixture
// of 201, 429, 400 and 409: only the 429 items come again, the 400 ones become dead
// letters with the item's error, 409 (op_type create) counts as delivered, and the
// batch is acknowledged once, after everything resolved.
func TestPerItemOutcomes(t *testing.T) {
	es := newFakeES(t, func(req int, a bulkAction) itemAnswer {
		n := idNum(a.ID)
		if req > 0 {
			return itemAnswer{Status: 201}
		}
		switch n % 5 {
		case 1:
			return itemAnswer{Status: 429, Type: "es_rejected_execution_exception", Reason: "rejected execution of coordinating operation"}
		case 2:
			return itemAnswer{Status: 400, Type: "mapper_parsing_exception", Reason: "failed to parse field [message] of type [long]"}
		case 3:
			return itemAnswer{Status: 409, Type: "version_conflict_engine_exception", Reason: "document already exists"}
		}
		return itemAnswer{Status: 201}
	})
	cfg := testConfig(es.srv.URL)
	cfg.OpType = "create"
	h := newHarness(t, cfg)
	var o outcome
	if err := h.sink.Consume(context.Background(), batch("app", 7, docs("app", "e", 20), 20, &o)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, "batch acknowledged", func() bool { n, _ := o.get(); return n > 0 })
	if n, err := o.get(); n != 1 || err != nil {
		t.Fatalf("Done called %d times, last with %v; want once with nil", n, err)
	}
	reqs := es.Requests()
	if len(reqs) != 2 {
		t.Fatalf("want 2 requests (first, then the 429 items), got %d", len(reqs))
	}
	if len(reqs[0].Actions) != 20 {
		t.Errorf("first request: %d actions", len(reqs[0].Actions))
	}
	for _, a := range reqs[1].Actions {
		if idNum(a.ID)%5 != 1 {
			t.Errorf("resent %s, which the server did not throttle", a.ID)
		}
	}
	if len(reqs[1].Actions) != 4 {
		t.Errorf("want the 4 throttled items resent, got %d", len(reqs[1].Actions))
	}
	for _, a := range reqs[0].Actions {
		if a.Op != "create" || a.Index != "logs-app-2026.03.04" {
			t.Errorf("action %s: op %q index %q", a.ID, a.Op, a.Index)
		}
	}
	letters := h.Letters()
	if len(letters) != 4 {
		t.Fatalf("want 4 dead letters, got %d", len(letters))
	}
	for _, l := range letters {
		if l.Stage != "sink" || l.Dataset != "app" || !strings.Contains(l.Reason, "mapper_parsing_exception") ||
			!strings.Contains(l.Reason, "failed to parse field [message]") {
			t.Errorf("letter: %+v", l)
		}
		if !strings.HasPrefix(string(l.Original), `{"@timestamp":`) || !strings.HasPrefix(l.ID, "sink:search:e-") {
			t.Errorf("letter original %q id %q", l.Original, l.ID)
		}
		if idNum(l.ID)%5 != 2 {
			t.Errorf("dead-lettered %s, which the server accepted", l.ID)
		}
	}
	m := h.metrics
	if got := h.counter(m.SentEvents); got != 12 { // 8 created first, 4 after the retry
		t.Errorf("sent %v, want 12", got)
	}
	if got := h.counter(m.Discarded, "already_indexed"); got != 4 {
		t.Errorf("already indexed %v, want 4", got)
	}
	if got := h.counter(m.DeadLettered, "sink"); got != 4 {
		t.Errorf("dead-lettered %v, want 4", got)
	}
	if got := h.counter(m.Errors, "item_429"); got != 4 {
		t.Errorf("item_429 errors %v, want 4", got)
	}
	if got := h.counter(m.Retries); got != 1 {
		t.Errorf("retries %v, want 1", got)
	}
}

// TestConflictWithIndexRetries: with op_type index a 409 is not "already there", so
// it is retried, not counted as delivered.
func TestConflictWithIndexRetries(t *testing.T) {
	es := newFakeES(t, func(req int, a bulkAction) itemAnswer {
		if req == 0 {
			return itemAnswer{Status: 409, Type: "version_conflict_engine_exception", Reason: "conflict"}
		}
		return itemAnswer{Status: 200}
	})
	h := newHarness(t, testConfig(es.srv.URL))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "c", 3), 3, &o))
	testutil.Eventually(t, wait, "acknowledged", func() bool { n, _ := o.get(); return n > 0 })
	if n, err := o.get(); n != 1 || err != nil || len(es.Requests()) != 2 || len(h.Letters()) != 0 {
		t.Fatalf("Done %d %v; requests %d; letters %d", n, err, len(es.Requests()), len(h.Letters()))
	}
}

// TestBatchesSpanRequests: batches larger than a request and requests holding
// several batches; each batch is acknowledged once, after all its documents.
func TestBatchesSpanRequests(t *testing.T) {
	var slow = make(chan struct{})
	es := newFakeES(t, nil)
	es.whole = func(req int, _ *bulkRequest) int {
		if req == 1 {
			<-slow // hold the second request until the test looked
		}
		return 0
	}
	cfg := testConfig(es.srv.URL)
	cfg.Batch.MaxEvents = 4
	h := newHarness(t, cfg)
	var a, b outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "a", 6), 6, &a))
	_ = h.sink.Consume(context.Background(), batch("app", 2, docs("app", "b", 3), 3, &b))
	testutil.Eventually(t, wait, "second request under way", func() bool { return len(es.Requests()) >= 2 })
	if n, _ := a.get(); n != 0 {
		t.Fatal("batch a acknowledged while some of its documents are still being sent")
	}
	close(slow)
	testutil.Eventually(t, wait, "both acknowledged", func() bool {
		na, _ := a.get()
		nb, _ := b.get()
		return na > 0 && nb > 0
	})
	for _, o := range []*outcome{&a, &b} {
		if n, err := o.get(); n != 1 || err != nil {
			t.Errorf("Done %d times, %v", n, err)
		}
	}
	total := 0
	for _, r := range es.Requests() {
		if len(r.Actions) > 4 {
			t.Errorf("request of %d actions; max_events is 4", len(r.Actions))
		}
		total += len(r.Actions)
	}
	if total != 9 {
		t.Errorf("sent %d actions, want 9", total)
	}
}

// TestFailover: the first URL refuses connections; everything goes to the second,
// and later requests start there.
func TestFailover(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	es := newFakeES(t, nil)
	h := newHarness(t, testConfig(dead, es.srv.URL))
	for i := range 3 {
		var o outcome
		_ = h.sink.Consume(context.Background(), batch("app", uint64(i), docs("app", "f", 5), 5, &o))
		testutil.Eventually(t, wait, "acknowledged", func() bool { n, _ := o.get(); return n > 0 })
		if n, err := o.get(); n != 1 || err != nil {
			t.Fatalf("batch %d: Done %d %v", i, n, err)
		}
	}
	if got := h.counter(h.metrics.Errors, "connect"); got != 1 {
		t.Errorf("connect errors %v, want 1 (failover sticks to the live URL)", got)
	}
	if got := h.counter(h.metrics.Retries); got != 0 {
		t.Errorf("failover within one attempt needs no retry; got %v", got)
	}
}

// TestGzipAndAuth checks the request: gzip body, content type, each kind of
// credentials and custom headers.
func TestGzipAndAuth(t *testing.T) {
	tests := []struct {
		name string
		auth Auth
		want string
	}{
		{"basic", Auth{Username: "vigil", Password: "s3cret"}, "Basic " + base64.StdEncoding.EncodeToString([]byte("vigil:s3cret"))},
		{"api_key", Auth{APIKey: "a2V5OnNlY3JldA=="}, "ApiKey a2V5OnNlY3JldA=="},
		{"bearer", Auth{BearerToken: "tok"}, "Bearer tok"},
		{"none", Auth{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := newFakeES(t, nil)
			cfg := testConfig(es.srv.URL)
			cfg.Auth = tt.auth
			cfg.Headers = map[string]string{"X-Team": "sec"}
			h := newHarness(t, cfg)
			var o outcome
			_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "g", 2), 2, &o))
			testutil.Eventually(t, wait, "acknowledged", func() bool { n, _ := o.get(); return n > 0 })
			r := es.Requests()[0]
			if !r.Gzipped || r.Header.Get("Content-Type") != "application/x-ndjson" {
				t.Errorf("gzip %v, content type %q", r.Gzipped, r.Header.Get("Content-Type"))
			}
			if got := r.Header.Get("Authorization"); got != tt.want {
				t.Errorf("Authorization %q, want %q", got, tt.want)
			}
			if r.Header.Get("X-Team") != "sec" {
				t.Error("custom header missing")
			}
			if len(r.Actions) != 2 || r.Actions[0].ID != "g-0" || r.Actions[0].Doc["message"] != "m 0" {
				t.Errorf("actions: %+v", r.Actions)
			}
		})
	}
}

func TestNoCompression(t *testing.T) {
	es := newFakeES(t, nil)
	cfg := testConfig(es.srv.URL)
	cfg.Compression = "none"
	h := newHarness(t, cfg)
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "n", 2), 2, &o))
	testutil.Eventually(t, wait, "acknowledged", func() bool { n, _ := o.get(); return n > 0 })
	if r := es.Requests()[0]; r.Gzipped || len(r.Actions) != 2 {
		t.Errorf("gzipped %v, %d actions", r.Gzipped, len(r.Actions))
	}
}

// TestWholeRequestTransient: 503 and 429 for whole requests are retried with
// backoff, never dropped or dead-lettered.
func TestWholeRequestTransient(t *testing.T) {
	es := newFakeES(t, nil)
	es.whole = func(req int, _ *bulkRequest) int {
		switch req {
		case 0:
			return http.StatusServiceUnavailable
		case 1:
			return http.StatusTooManyRequests
		case 2:
			return http.StatusUnauthorized
		}
		return 0
	}
	h := newHarness(t, testConfig(es.srv.URL))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "w", 4), 4, &o))
	testutil.Eventually(t, wait, "acknowledged", func() bool { n, _ := o.get(); return n > 0 })
	if n, err := o.get(); n != 1 || err != nil {
		t.Fatalf("Done %d %v", n, err)
	}
	if len(es.Requests()) != 4 || len(h.Letters()) != 0 {
		t.Errorf("requests %d letters %d", len(es.Requests()), len(h.Letters()))
	}
	if got := h.counter(h.metrics.Retries); got != 3 {
		t.Errorf("retries %v, want 3", got)
	}
	if got := h.counter(h.metrics.SentEvents); got != 4 {
		t.Errorf("sent %v", got)
	}
}

// TestWholeRequestRejectedIsolates: a body refused as a whole (400) is halved until
// the one document that causes it is alone; only that one is dead-lettered.
func TestWholeRequestRejectedIsolates(t *testing.T) {
	es := newFakeES(t, nil)
	es.whole = func(_ int, r *bulkRequest) int {
		for _, a := range r.Actions {
			if a.ID == "p-5" {
				return http.StatusBadRequest
			}
		}
		return 0
	}
	h := newHarness(t, testConfig(es.srv.URL))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "p", 8), 8, &o))
	testutil.Eventually(t, wait, "acknowledged", func() bool { n, _ := o.get(); return n > 0 })
	if n, err := o.get(); n != 1 || err != nil {
		t.Fatalf("Done %d %v", n, err)
	}
	letters := h.Letters()
	if len(letters) != 1 || letters[0].ID != "sink:search:p-5" || !strings.Contains(letters[0].Reason, "HTTP 400") {
		t.Fatalf("letters: %+v", letters)
	}
	if got := h.counter(h.metrics.SentEvents); got != 7 {
		t.Errorf("sent %v, want 7", got)
	}
}

// TestStopHandsBack: a cluster that keeps throttling cannot hold Stop past its
// deadline; the batch is handed back (Done with an error) to be redelivered.
func TestStopHandsBack(t *testing.T) {
	es := newFakeES(t, func(int, bulkAction) itemAnswer {
		return itemAnswer{Status: 429, Type: "es_rejected_execution_exception", Reason: "busy"}
	})
	h := newHarness(t, testConfig(es.srv.URL))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "s", 3), 3, &o))
	testutil.Eventually(t, wait, "retrying", func() bool { return len(es.Requests()) >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.sink.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := o.get(); n != 1 || err == nil {
		t.Fatalf("Done %d times, %v; want once with an error", n, err)
	}
	if err := h.sink.Consume(context.Background(), batch("app", 2, docs("app", "s", 1), 1, &o)); err == nil {
		t.Error("Consume after Stop accepted a batch")
	}
	if err := h.sink.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestStopFlushes: Stop sends what is pending (max_wait not reached) and
// acknowledges it.
func TestStopFlushes(t *testing.T) {
	es := newFakeES(t, nil)
	cfg := testConfig(es.srv.URL)
	cfg.Batch.MaxWait = time.Hour
	h := newHarness(t, cfg)
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "q", 3), 3, &o))
	if len(es.Requests()) != 0 {
		t.Fatal("sent before max_wait")
	}
	if err := h.sink.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, err := o.get(); n != 1 || err != nil {
		t.Fatalf("Done %d %v", n, err)
	}
	if len(es.Requests()) != 1 {
		t.Errorf("requests %d", len(es.Requests()))
	}
}

// TestDocumentWithoutID: no event.id means no _id (the cluster assigns one).
func TestDocumentWithoutID(t *testing.T) {
	es := newFakeES(t, nil)
	h := newHarness(t, testConfig(es.srv.URL))
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, []byte(`{"message":"no id"}`+"\n"), 1, &o))
	testutil.Eventually(t, wait, "acknowledged", func() bool { n, _ := o.get(); return n > 0 })
	a := es.Requests()[0].Actions[0]
	if a.ID != "" || a.Index != "logs-app-2026.03.04" {
		t.Errorf("id %q index %q (no @timestamp: the batch's time)", a.ID, a.Index)
	}
}

func TestInstallTemplates(t *testing.T) {
	es := newFakeES(t, nil)
	cfg := testConfig(es.srv.URL)
	cfg.InstallTemplates = true
	h := newHarness(t, cfg)
	var o outcome
	_ = h.sink.Consume(context.Background(), batch("app", 1, docs("app", "t", 1), 1, &o))
	testutil.Eventually(t, wait, "acknowledged", func() bool { n, _ := o.get(); return n > 0 })
	es.mu.Lock()
	other := append([]string(nil), es.other...)
	es.mu.Unlock()
	if len(other) != len(BuiltinDatasets)+1 || other[0] != "PUT /_index_template/vigil-apache.access" ||
		other[len(other)-1] != "PUT /_index_template/vigil-ecs" {
		t.Errorf("template requests: %v", other)
	}
	tpl := h.sink.Templates()
	if !strings.Contains(string(tpl[0].Body), `"index_patterns":["logs-apache.access-*"]`) {
		t.Errorf("template body: %s", tpl[0].Body)
	}
	if last := tpl[len(tpl)-1]; !strings.Contains(string(last.Body), `"index_patterns":["logs-*-*.*.*"]`) ||
		!strings.Contains(string(last.Body), `"priority":90`) {
		t.Errorf("fallback template body: %s", last.Body)
	}
}
