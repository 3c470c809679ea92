package firehosesource

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
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
	// block, when set, holds Store until it is closed or ctx ends.
	block chan struct{}
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

type testServer struct {
	src     *Source
	intake  *fakeIntake
	metrics *component.Metrics
	url     string
}

const testKey = "k3y-for-tests"

// startSource starts a source named "fh" with access key testKey on 127.0.0.1:0
// and stops it at cleanup.
func startSource(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	cfg := NewConfig()
	cfg.Address = "127.0.0.1:0"
	cfg.AccessKeys = []string{testKey}
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	in := &fakeIntake{}
	m := component.NewMetrics(prometheus.NewRegistry())
	src := New(cfg, component.SourceDeps{Name: "fh", Intake: in, Log: slog.New(slog.DiscardHandler), Metrics: m})
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
	return &testServer{src: src, intake: in, metrics: m, url: "http://" + src.Addr() + cfg.Path}
}

// delivery is a request as Firehose builds it.
type delivery struct {
	id      string
	records [][]byte
	gzip    bool
	key     string // "" sends no access key header
	body    []byte // when set, sent instead of the envelope built from records
}

// envelopeBody builds the request body the way the specification shows it.
func envelopeBody(id string, records [][]byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"requestId":%q,"timestamp":%d,"records":[`, id, time.Now().UnixMilli())
	for i, r := range records {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"data":"%s"}`, base64.StdEncoding.EncodeToString(r))
	}
	b.WriteString("]}")
	return b.Bytes()
}

func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (d delivery) request(t testing.TB, url string) *http.Request {
	t.Helper()
	body := d.body
	if body == nil {
		body = envelopeBody(d.id, d.records)
	}
	if d.gzip {
		body = gzipped(t, body)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderProtocolVersion, "1.0")
	req.Header.Set(HeaderRequestID, d.id)
	req.Header.Set(HeaderSourceArn, "arn:aws:firehose:us-east-1:123456789012:deliverystream/test")
	req.Header.Set("X-Amz-Firehose-Common-Attributes", `{"commonAttributes":{"env":"test"}}`)
	if d.key != "" {
		req.Header.Set(HeaderAccessKey, d.key)
	}
	if d.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	return req
}

type reply struct {
	code   int
	header http.Header
	body   response
	raw    string
}

var client = &http.Client{Timeout: 30 * time.Second}

func do(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.body); err != nil {
		t.Fatalf("answer %d is not the specification's JSON: %q", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(raw)) {
		t.Errorf("Content-Length %q for %d bytes", cl, len(raw))
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding %q: the answer must be uncompressed", ce)
	}
	if r.body.Timestamp < time.Now().Add(-time.Minute).UnixMilli() {
		t.Errorf("timestamp %d is not milliseconds since the epoch", r.body.Timestamp)
	}
	return r
}

func (ts *testServer) deliver(t testing.TB, d delivery) reply {
	t.Helper()
	return do(t, d.request(t, ts.url))
}

func TestDeliver(t *testing.T) {
	ts := startSource(t, nil)
	// The example of the specification, byte for byte apart from the missing comma
	// after "timestamp" in the published text.
	body := []byte(`{
  "requestId": "ed4acda5-034f-9f42-bba1-f29aea6d7d8f",
  "timestamp": 1578090901599,
  "records": [
    {
      "data": "aGVsbG8="
    },
    {
      "data": "aGVsbG8gd29ybGQ="
    }
  ]
}`)
	r := ts.deliver(t, delivery{id: "ed4acda5-034f-9f42-bba1-f29aea6d7d8f", key: testKey, body: body})
	if r.code != 200 || r.body.RequestID != "ed4acda5-034f-9f42-bba1-f29aea6d7d8f" || r.body.ErrorMessage != "" {
		t.Fatalf("got %d %s", r.code, r.raw)
	}
	if strings.Contains(r.raw, "errorMessage") {
		t.Errorf("success answer has errorMessage: %s", r.raw)
	}
	if got := ts.intake.records(); strings.Join(got, "|") != "hello|hello world" {
		t.Errorf("stored %q", got)
	}
	st := ts.intake.stored[0]
	if st.Format != "" || st.Dataset != "" || st.Received.IsZero() {
		t.Errorf("records meta %+v", st)
	}

	// The same, gzip-compressed as a Firehose stream with compression enabled sends it.
	recs := [][]byte{[]byte(`{"a":1}`), {0x1f, 0x8b, 0, 1, 2, 255}, []byte("line\nwith newline")}
	r = ts.deliver(t, delivery{id: "gz-1", key: testKey, records: recs, gzip: true})
	if r.code != 200 || r.body.RequestID != "gz-1" {
		t.Fatalf("gzip: %d %s", r.code, r.raw)
	}
	got := ts.intake.records()[2:]
	for i := range recs {
		if got[i] != string(recs[i]) {
			t.Errorf("gzip record %d: %q, want %q", i, got[i], recs[i])
		}
	}
	if v := value(ts.metrics.ReceivedEvents.WithLabelValues("source", "fh")); v != 5 {
		t.Errorf("received events %v, want 5", v)
	}
	if v := value(ts.metrics.Requests.WithLabelValues("source", "fh", "200")); v != 2 {
		t.Errorf("200 answers %v", v)
	}
}

func TestEmptyRecords(t *testing.T) {
	ts := startSource(t, nil)
	body := []byte(`{"requestId":"e1","timestamp":1,"records":[{"data":""},{"data":"eA=="}]}`)
	r := ts.deliver(t, delivery{id: "e1", key: testKey, body: body})
	if r.code != 200 {
		t.Fatalf("got %d %s", r.code, r.raw)
	}
	if got := ts.intake.records(); len(got) != 1 || got[0] != "x" {
		t.Errorf("stored %q", got)
	}
	if v := value(ts.metrics.Discarded.WithLabelValues("source", "fh", "empty_record")); v != 1 {
		t.Errorf("discarded %v", v)
	}
	// No records at all: nothing to store, still a success so Firehose moves on.
	r = ts.deliver(t, delivery{id: "e2", key: testKey, body: []byte(`{"requestId":"e2","timestamp":1,"records":[]}`)})
	if r.code != 200 || r.body.RequestID != "e2" {
		t.Errorf("no records: %d %s", r.code, r.raw)
	}
}

func TestAccessKey(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.AccessKeys = []string{"first-key", "second-key"} })
	tests := []struct {
		name string
		key  string
		want int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"wrong", "nope", http.StatusForbidden},
		{"prefix", "first", http.StatusForbidden},
		{"longer", "first-key2", http.StatusForbidden},
		{"case differs", "FIRST-KEY", http.StatusForbidden},
		{"long", strings.Repeat("k", 4096), http.StatusForbidden},
		{"first", "first-key", http.StatusOK},
		{"second", "second-key", http.StatusOK},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("req-%d", i)
			r := ts.deliver(t, delivery{id: id, key: tt.key, records: [][]byte{[]byte("x")}})
			if r.code != tt.want {
				t.Fatalf("got %d %s, want %d", r.code, r.raw, tt.want)
			}
			if r.body.RequestID != id {
				t.Errorf("requestId %q", r.body.RequestID)
			}
			if tt.want != 200 && r.body.ErrorMessage == "" {
				t.Errorf("no errorMessage: %s", r.raw)
			}
			if strings.Contains(r.raw, "first") || strings.Contains(r.raw, "nope") {
				t.Errorf("answer echoes a key: %s", r.raw)
			}
		})
	}
	if n := len(ts.intake.records()); n != 2 {
		t.Errorf("stored %d records, want 2", n)
	}
}

func TestMalformed(t *testing.T) {
	ts := startSource(t, nil)
	tests := []struct {
		name   string
		body   string
		gzip   bool
		wantID string
		want   string
	}{
		{"not json", `{"requestId":"m1","records":[`, false, "hdr", "body is not valid JSON"},
		{"not an object", `[1,2]`, false, "hdr", `body: field "" is a JSON array`},
		{"no requestId", `{"timestamp":1,"records":[{"data":"eA=="}]}`, false, "hdr", "body: requestId is missing or empty"},
		{"requestId a number", `{"requestId":5,"records":[]}`, false, "hdr", `body: field "requestId" is a JSON number, want a string`},
		{"no records", `{"requestId":"m2","timestamp":1}`, false, "hdr", "body: records is missing"},
		{"records an object", `{"requestId":"m3","records":{}}`, false, "hdr", `body: field "records" is a JSON object, want an array`},
		{"data missing", `{"requestId":"m4","records":[{"data":"eA=="},{}]}`, false, "hdr", "records[1]: data is missing"},
		{"bad base64", `{"requestId":"m5","records":[{"data":"eA=="},{"data":"eA=="},{"data":"!!!"}]}`, false, "hdr", "records[2].data: not valid base64: illegal base64 data at input byte 0"},
		{"data a number", `{"requestId":"m6","records":[{"data":1}]}`, false, "hdr", `body: field "records.data" is a JSON number, want a string`},
		{"gzip of garbage", `{"requestId":`, true, "hdr", "body is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.deliver(t, delivery{id: "hdr", key: testKey, body: []byte(tt.body), gzip: tt.gzip})
			if r.code != http.StatusBadRequest || !strings.HasPrefix(r.body.ErrorMessage, tt.want) {
				t.Errorf("got %d %s\nwant 400 with %q", r.code, r.raw, tt.want)
			}
			if r.body.RequestID != tt.wantID {
				t.Errorf("requestId %q, want %q", r.body.RequestID, tt.wantID)
			}
		})
	}
	if len(ts.intake.stored) != 0 {
		t.Errorf("stored %+v", ts.intake.stored)
	}
	// A body that claims gzip but is not.
	req := delivery{id: "z", key: testKey, body: []byte(`{"requestId":"z","records":[]}`)}.request(t, ts.url)
	req.Header.Set("Content-Encoding", "gzip")
	if r := do(t, req); r.code != http.StatusBadRequest || !strings.HasPrefix(r.body.ErrorMessage, "gzip body:") {
		t.Errorf("not gzip: %d %s", r.code, r.raw)
	}
	req = delivery{id: "v", key: testKey, body: []byte(`{"requestId":"v","records":[]}`)}.request(t, ts.url)
	req.Header.Set(HeaderProtocolVersion, "2.0")
	if r := do(t, req); r.code != http.StatusBadRequest || !strings.Contains(r.body.ErrorMessage, `"2.0" is not supported`) {
		t.Errorf("version 2.0: %d %s", r.code, r.raw)
	}
}

func TestPathAndMethod(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.Path = "/firehose/cloudwatch" })
	r := do(t, delivery{id: "p", key: testKey, records: [][]byte{[]byte("x")}}.request(t, "http://"+ts.src.Addr()+"/other"))
	if r.code != http.StatusNotFound || r.body.ErrorMessage != "this endpoint serves the path /firehose/cloudwatch" || r.body.RequestID != "p" {
		t.Errorf("other path: %d %s", r.code, r.raw)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.url, nil)
	if r := do(t, req); r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("GET: %d %s", r.code, r.raw)
	}
	if r := ts.deliver(t, delivery{id: "ok", key: testKey, records: [][]byte{[]byte("x")}}); r.code != 200 {
		t.Errorf("configured path: %d %s", r.code, r.raw)
	}
}

func TestBodyLimit(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.MaxBodyBytes = 8 << 10 })
	big := [][]byte{bytes.Repeat([]byte("a"), 7<<10)} // ~9.3 KiB of base64
	r := ts.deliver(t, delivery{id: "big", key: testKey, records: big})
	if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(r.body.ErrorMessage, "over the 8192 byte limit") || r.body.RequestID != "big" {
		t.Errorf("plain: %d %s", r.code, r.raw)
	}
	// Compressed it is small, decoded it is over the limit.
	r = ts.deliver(t, delivery{id: "bomb", key: testKey, records: big, gzip: true})
	if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(r.body.ErrorMessage, "decoded body is over") {
		t.Errorf("gzip: %d %s", r.code, r.raw)
	}
	if len(ts.intake.stored) != 0 {
		t.Error("stored an oversized request")
	}
}

// TestMaxSize delivers the largest request the specification allows: a 64 MiB body
// (before compression) of maximum-size records, plain and gzip-compressed.
func TestMaxSize(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB requests")
	}
	ts := startSource(t, nil)
	const maxRecord = 1024000 // the specification's largest record before base64
	var recs [][]byte
	size := len(`{"requestId":"max-size","timestamp":1578090901599,"records":[]}`)
	for i := 0; ; i++ {
		r := bytes.Repeat([]byte{byte('a' + i%26)}, maxRecord)
		n := len(`{"data":""},`) + base64.StdEncoding.EncodedLen(len(r))
		if size+n > SpecMaxBodyBytes {
			r = r[:base64.StdEncoding.DecodedLen(SpecMaxBodyBytes-size-len(`{"data":""},`))-2]
			recs = append(recs, r)
			break
		}
		recs = append(recs, r)
		size += n
	}
	body := envelopeBody("max-size", recs)
	if len(body) > SpecMaxBodyBytes || len(body) < SpecMaxBodyBytes-64 {
		t.Fatalf("body is %d bytes, want just under %d", len(body), SpecMaxBodyBytes)
	}
	for _, gz := range []bool{false, true} {
		r := ts.deliver(t, delivery{id: "max-size", key: testKey, body: body, gzip: gz})
		if r.code != 200 {
			t.Fatalf("gzip=%v: %d %s", gz, r.code, r.raw)
		}
	}
	ts.intake.mu.Lock()
	defer ts.intake.mu.Unlock()
	if len(ts.intake.stored) != 2 {
		t.Fatalf("%d stores", len(ts.intake.stored))
	}
	for _, st := range ts.intake.stored {
		if len(st.Records) != len(recs) {
			t.Fatalf("%d records stored, want %d", len(st.Records), len(recs))
		}
		for i := range recs {
			if !bytes.Equal(st.Records[i], recs[i]) {
				t.Fatalf("record %d differs", i)
			}
		}
	}
}

// TestRetriedRequestID: Firehose retries with the same request ID after a failure;
// the answer names the request ID, and every attempt's store carries the same unit
// ID (the stream drops a second store of it within buffer.duplicate_window), while
// another delivery with the same request ID but other records gets another.
func TestRetriedRequestID(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.RetryAfter = 3 * time.Second })
	d := delivery{id: "retry-me", key: testKey, records: [][]byte{[]byte("one"), []byte("two")}}
	ts.intake.mu.Lock()
	ts.intake.storeErr = fmt.Errorf("publish: %w", component.ErrUnavailable)
	ts.intake.mu.Unlock()
	r := ts.deliver(t, d)
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "3" || r.body.RequestID != "retry-me" || r.body.ErrorMessage == "" {
		t.Fatalf("failed attempt: %d %v %s", r.code, r.header, r.raw)
	}
	ts.intake.mu.Lock()
	ts.intake.storeErr = nil
	ts.intake.mu.Unlock()
	for attempt := range 2 {
		r = ts.deliver(t, d)
		if r.code != 200 || r.body.RequestID != "retry-me" {
			t.Fatalf("attempt %d: %d %s", attempt, r.code, r.raw)
		}
	}
	// Two successful attempts (the second as after a lost answer) reach the intake
	// twice, under one unit ID that the stream's duplicate detection keeps to one.
	if got := ts.intake.records(); strings.Join(got, "|") != "one|two|one|two" {
		t.Errorf("stored %q", got)
	}
	other := delivery{id: "retry-me", key: testKey, records: [][]byte{[]byte("one"), []byte("three")}}
	if r := ts.deliver(t, other); r.code != 200 {
		t.Fatalf("other records under the same request ID: %d %s", r.code, r.raw)
	}
	ts.intake.mu.Lock()
	defer ts.intake.mu.Unlock()
	ids := make([]string, 0, len(ts.intake.stored))
	for _, u := range ts.intake.stored {
		ids = append(ids, u.ID)
	}
	if len(ids) != 3 || !strings.HasPrefix(ids[0], "fh:retry-me:") || ids[1] != ids[0] || ids[2] == ids[0] || !strings.HasPrefix(ids[2], "fh:retry-me:") {
		t.Errorf("unit IDs %q: want the retry's equal to the first and other records' different, all fh:<requestId>:…", ids)
	}
}

func TestStoreErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		want       int
		retryAfter string
	}{
		{"full", fmt.Errorf("publish: %w", component.ErrFull), http.StatusTooManyRequests, "7"},
		{"unavailable", fmt.Errorf("publish: %w", component.ErrUnavailable), http.StatusServiceUnavailable, "7"},
		{"other", io.ErrUnexpectedEOF, http.StatusServiceUnavailable, "7"},
		// Never 413 here: Firehose drops a 413 batch without keeping a copy.
		{"too large", fmt.Errorf("publish: %w", component.ErrTooLarge), http.StatusInternalServerError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startSource(t, func(c *Config) { c.RetryAfter = 7 * time.Second })
			ts.intake.storeErr = tt.err
			r := ts.deliver(t, delivery{id: "s", key: testKey, records: [][]byte{[]byte("x")}})
			if r.code != tt.want || r.header.Get("Retry-After") != tt.retryAfter || r.body.ErrorMessage == "" {
				t.Errorf("got %d Retry-After %q %s", r.code, r.header.Get("Retry-After"), r.raw)
			}
			if strings.Contains(r.raw, "publish") || strings.Contains(r.raw, "EOF") {
				t.Errorf("answer leaks the internal error: %s", r.raw)
			}
		})
	}
}

// TestResponseTimeout: a stalled stream gets an error answer within
// response_timeout, long before Firehose's own 3-minute timeout.
func TestResponseTimeout(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.ResponseTimeout = 300 * time.Millisecond })
	ts.intake.block = make(chan struct{})
	defer close(ts.intake.block)
	r := ts.deliver(t, delivery{id: "slow", key: testKey, records: [][]byte{[]byte("x")}})
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("got %d %s", r.code, r.raw)
	}
}

// TestConcurrentDeliveries: a burst of 20 concurrent deliveries, more than
// max_in_flight, all stored and answered with their own request IDs.
func TestConcurrentDeliveries(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.MaxInFlight = 4 })
	const senders, perSender, recsPer = 20, 5, 50
	var wg sync.WaitGroup
	errs := make(chan string, senders*perSender)
	for g := range senders {
		wg.Go(func() {
			for n := range perSender {
				id := fmt.Sprintf("g%d-n%d", g, n)
				recs := make([][]byte, recsPer)
				for i := range recs {
					recs[i] = fmt.Appendf(nil, "%s-r%d", id, i)
				}
				req := delivery{id: id, key: testKey, records: recs, gzip: n%2 == 0}.request(t, ts.url)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				var body response
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || body.RequestID != id {
					errs <- fmt.Sprintf("%s: %d %+v %v", id, resp.StatusCode, body, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	seen := map[string]int{}
	for _, r := range ts.intake.records() {
		seen[r]++
	}
	if len(seen) != senders*perSender*recsPer {
		t.Fatalf("%d distinct records stored, want %d", len(seen), senders*perSender*recsPer)
	}
	for r, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", r, n)
		}
	}
}

func TestClosing(t *testing.T) {
	ts := startSource(t, nil)
	if !ts.src.Ready() {
		t.Error("not ready after Start")
	}
	ts.src.listener.StartClosing()
	if ts.src.Ready() {
		t.Error("ready while closing")
	}
	r := ts.deliver(t, delivery{id: "late", key: testKey, records: [][]byte{[]byte("x")}})
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "5" || r.body.RequestID != "late" {
		t.Errorf("got %d %v %s", r.code, r.header, r.raw)
	}
	if len(ts.intake.stored) != 0 {
		t.Error("stored while closing")
	}
}

// TestStopAnswersInFlight: Stop lets a request whose Store is under way finish and
// answers it with its true outcome.
func TestStopAnswersInFlight(t *testing.T) {
	ts := startSource(t, nil)
	ts.intake.block = make(chan struct{})
	done := make(chan reply, 1)
	go func() { done <- ts.deliver(t, delivery{id: "inflight", key: testKey, records: [][]byte{[]byte("x")}}) }()
	testutil.Eventually(t, 10*time.Second, "condition", func() bool {
		return value(ts.metrics.ReceivedBytes.WithLabelValues("source", "fh")) > 0
	})
	stopped := make(chan error, 1)
	go func() { stopped <- ts.src.Stop(context.Background()) }()
	testutil.Eventually(t, 10*time.Second, "condition", func() bool { return !ts.src.Ready() })
	close(ts.intake.block)
	if r := <-done; r.code != 200 || r.body.RequestID != "inflight" {
		t.Errorf("in-flight request: %d %s", r.code, r.raw)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestStopWithoutStartAndTwice(t *testing.T) {
	s := New(NewConfig(), component.SourceDeps{Name: "x", Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop without Start: %v", err)
	}
	ts := startSource(t, nil)
	if d := ts.src.Describe(); !strings.HasPrefix(d, "fh on http://127.0.0.1:") || !strings.HasSuffix(d, "/ (Firehose HTTP endpoint)") {
		t.Errorf("Describe = %q", d)
	}
	if err := ts.src.Stop(context.Background()); err != nil {
		t.Errorf("first Stop: %v", err)
	}
}

func TestConfig(t *testing.T) {
	if err := NewConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"public without keys", func(c *Config) { c.Address = "0.0.0.0:443" }, "address: 0.0.0.0:443 is reachable from other machines but no access_keys are set"},
		{"bad address", func(c *Config) { c.Address = "443" }, `address: want host:port, got "443"`},
		{"empty key", func(c *Config) { c.AccessKeys = []string{" "} }, "access_keys[0]: empty key"},
		{"key too long", func(c *Config) { c.AccessKeys = []string{strings.Repeat("k", 4097)} }, "access_keys[0]: 4097 bytes, but Firehose sends at most 4096"},
		{"relative path", func(c *Config) { c.Path = "firehose" }, `path: must start with '/', got "firehose"`},
		{"tiny body", func(c *Config) { c.MaxBodyBytes = 10 }, "max_body_bytes: must be at least 1KiB"},
		{"no slots", func(c *Config) { c.MaxInFlight = 0 }, "max_in_flight: must be at least 1"},
		{"half tls", func(c *Config) { c.TLS.CertFile = "x" }, "tls: set both cert_file and key_file"},
		{"slow answer", func(c *Config) { c.ResponseTimeout = 3 * time.Minute }, "response_timeout: must be positive and below Firehose's 3m0s timeout"},
		{"retry after", func(c *Config) { c.RetryAfter = 0 }, "retry_after: must be at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			tt.mod(c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	c := NewConfig()
	c.Address = "0.0.0.0:443"
	c.AccessKeys = []string{"k"}
	if err := c.Validate(); err != nil {
		t.Errorf("public with keys: %v", err)
	}
	if c.DefaultFormat() != "cloudwatch_logs" {
		t.Errorf("default format %q", c.DefaultFormat())
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
