package esbulksource

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
)

// fakeIntake records what the source stores and dead-letters, copying as the real
// intake does, and fails with storeErr when set.
type fakeIntake struct {
	mu       sync.Mutex
	stored   []component.Records
	letters  []component.Letter
	storeErr error
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
	f.letters = append(f.letters, letters...)
	return nil
}

func (f *fakeIntake) setErr(err error) {
	f.mu.Lock()
	f.storeErr = err
	f.mu.Unlock()
}

func startSource(t testing.TB, mod func(*Config)) (*Source, *fakeIntake, string) {
	t.Helper()
	cfg := NewConfig()
	cfg.Address = "127.0.0.1:0"
	cfg.Users = []User{{Username: "u", Password: "p"}}
	cfg.APIKeys = []string{"kid:kval"}
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	in := &fakeIntake{}
	src := New(cfg, component.SourceDeps{Name: "es", Intake: in, Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry())})
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
	return src, in, "http://" + src.Addr()
}

var basicAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))

func do(t testing.TB, method, url, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
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

const twoDocs = "{\"create\":{\"_index\":\"logs-a-default\"}}\n{\"m\":1}\n{\"index\":{\"_index\":\"logs-a-default\",\"_id\":\"given\"}}\n{\"m\":2}\n"

func TestAuth(t *testing.T) {
	_, in, base := startSource(t, nil)
	tests := []struct {
		name   string
		header []string
		status int
	}{
		{"none", nil, 401},
		{"wrong password", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:x"))}, 401},
		{"api key as basic", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("kid:kval"))}, 401},
		{"not base64", []string{"Authorization", "ApiKey !!"}, 401},
		{"bearer", []string{"Authorization", "Bearer x"}, 401},
		{"basic", []string{"Authorization", basicAuth}, 200},
		{"api key", []string{"Authorization", "ApiKey " + base64.StdEncoding.EncodeToString([]byte("kid:kval"))}, 200},
	}
	for _, tt := range tests {
		status, body, h := do(t, "POST", base+"/_bulk", twoDocs, tt.header...)
		if status != tt.status {
			t.Errorf("%s: %d %s", tt.name, status, body)
		}
		if h.Get("X-Elastic-Product") != "Elasticsearch" {
			t.Errorf("%s: no X-Elastic-Product header", tt.name)
		}
		if status == 401 && (!strings.Contains(body, `"type":"security_exception"`) || h.Get("WWW-Authenticate") == "") {
			t.Errorf("%s: %s %v", tt.name, body, h)
		}
		if strings.Contains(body, "kval") || strings.Contains(body, `u:x`) {
			t.Errorf("%s: answer echoes a secret: %s", tt.name, body)
		}
	}
	if n := len(in.stored); n != 2 {
		t.Errorf("%d stores, want 2", n)
	}
}

func TestBulkAnswer(t *testing.T) {
	_, in, base := startSource(t, func(c *Config) { c.IndexAsDataset = true })
	body := twoDocs + "{\"create\":{}}\n{\"m\":\n{\"delete\":{\"_index\":\"x\",\"_id\":\"1\"}}\n{\"create\":{\"_index\":\"other\"}}\n{\"m\":3}\n"
	status, resp, _ := do(t, "POST", base+"/fallback/_bulk", body, "Authorization", basicAuth)
	if status != 200 {
		t.Fatalf("%d %s", status, resp)
	}
	var r struct {
		Errors bool                                    `json:"errors"`
		Items  []map[string]map[string]json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(resp), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Errors || len(r.Items) != 5 {
		t.Fatalf("answer %s", resp)
	}
	want := []string{"create 201 logs-a-default", "index 201 logs-a-default", "create 400 fallback", "delete 400 x", "create 201 other"}
	for i, it := range r.Items {
		for action, v := range it {
			if got := fmt.Sprintf("%s %s %s", action, v["status"], strings.Trim(string(v["_index"]), `"`)); got != want[i] {
				t.Errorf("item %d: %s, want %s", i, got, want[i])
			}
		}
	}
	if string(r.Items[1]["index"]["_id"]) != `"given"` || len(r.Items[0]["create"]["_id"]) != 22 {
		t.Errorf("ids: %s %s", r.Items[1]["index"]["_id"], r.Items[0]["create"]["_id"])
	}
	if !strings.Contains(string(r.Items[2]["create"]["error"]), "mapper_parsing_exception") || !strings.Contains(string(r.Items[2]["create"]["error"]), "line [6]") {
		t.Errorf("bad document error: %s", r.Items[2]["create"]["error"])
	}
	if len(in.stored) != 2 || in.stored[0].Dataset != "a" || len(in.stored[0].Records) != 2 || in.stored[1].Dataset != "other" {
		t.Errorf("stored %+v", in.stored)
	}
	if len(in.letters) != 1 || string(in.letters[0].Original) != `{"m":` {
		t.Errorf("dead letters %+v", in.letters)
	}
	status, resp, _ = do(t, "POST", base+"/_bulk", "nonsense\n{}\n", "Authorization", basicAuth)
	if status != 400 || !strings.Contains(resp, "Malformed action/metadata line [1]") {
		t.Errorf("malformed action: %d %s", status, resp)
	}
}

func TestStoreFailures(t *testing.T) {
	_, in, base := startSource(t, nil)
	tests := []struct {
		err        error
		status     int
		typ        string
		retryAfter string
	}{
		{component.ErrFull, 429, "es_rejected_execution_exception", "5"},
		{fmt.Errorf("publish: %w", component.ErrUnavailable), 503, "unavailable_shards_exception", "5"},
		{fmt.Errorf("publish: %w", component.ErrTooLarge), 413, "illegal_argument_exception", ""},
	}
	for _, tt := range tests {
		in.setErr(tt.err)
		status, body, h := do(t, "POST", base+"/_bulk", twoDocs, "Authorization", basicAuth)
		if status != tt.status || !strings.Contains(body, tt.typ) || h.Get("Retry-After") != tt.retryAfter {
			t.Errorf("%v: %d %s Retry-After %q", tt.err, status, body, h.Get("Retry-After"))
		}
	}
}

func TestConnectCalls(t *testing.T) {
	_, _, base := startSource(t, nil)
	tests := []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/", 200, `"number":"8.17.0"`},
		{"GET", "/", 200, `"tagline":"You Know, for Search"`},
		{"HEAD", "/", 200, ""},
		{"GET", "/_license?human=false", 200, `"type":"basic"`},
		{"GET", "/_xpack", 200, `"ilm":{"available":true`},
		{"GET", "/_cluster/health", 200, `"status":"green"`},
		{"HEAD", "/_index_template/filebeat-8.17.0", 404, ""},
		{"PUT", "/_index_template/filebeat-8.17.0", 200, `{"acknowledged":true}`},
		{"GET", "/_ilm/policy/filebeat", 404, "resource_not_found_exception"},
		{"PUT", "/_ilm/policy/filebeat", 200, `{"acknowledged":true}`},
		{"PUT", "/_ingest/pipeline/p", 200, `{"acknowledged":true}`},
		{"GET", "/_nodes", 400, "no handler found"},
	}
	for _, tt := range tests {
		status, body, _ := do(t, tt.method, base+tt.path, "{}", "Authorization", basicAuth)
		if status != tt.status || !strings.Contains(body, tt.contains) {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, status, body)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	_, _, base := startSource(t, func(c *Config) { c.MaxBodyBytes = 1 << 10 })
	big := "{\"create\":{\"_index\":\"i\"}}\n{\"m\":\"" + strings.Repeat("x", 2000) + "\"}\n"
	if status, body, _ := do(t, "POST", base+"/_bulk", big, "Authorization", basicAuth); status != 413 {
		t.Errorf("%d %s", status, body)
	}
}

func TestConfigValidate(t *testing.T) {
	c := NewConfig()
	c.Address = "0.0.0.0:9200"
	c.APIKeys = []string{"bm9jb2xvbg=="} // "nocolon"
	c.Version = "8"
	c.Users = []User{{Username: "a:b"}}
	err := c.Validate()
	for _, want := range []string{"api_keys[0]:", "version:", "users[0].username:", "users[0].password:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	c = NewConfig()
	c.Address = "0.0.0.0:9200"
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "address:") {
		t.Errorf("open address without credentials: %v", err)
	}
	if err := NewConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
