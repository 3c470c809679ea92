package elasticsearchsink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// These tests run the opensearch flavour of the sink against a real OpenSearch
// node (testutil.OpenSearch: 2.19 from Maven Central's jars, a JVM process). One
// node serves the whole package (started by the first test that needs it, stopped
// by TestMain); each test writes its own indices. The overload test starts a second
// node of its own, with a write queue of one.

// shared is the package's OpenSearch node.
var shared sharedNode

type sharedNode struct {
	once sync.Once
	dir  string
	node *testutil.OpenSearch
	err  error
}

func (s *sharedNode) get(t testing.TB) *testutil.OpenSearch {
	t.Helper()
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "vigil-opensearch-")
		if s.err == nil {
			s.node, s.err = testutil.LaunchOpenSearch(s.dir)
		}
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.node
}

func (s *sharedNode) stop() {
	if s.node != nil {
		s.node.Stop()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

const osWait = 60 * time.Second

func osConfig(url, index string) *Config {
	c := testConfig(url)
	c.Index = index
	c.InstallTemplates = true
	c.Batch.MaxEvents = 500
	c.RequestTimeout = 30 * time.Second
	return c
}

// deliverAll hands docs to the sink as batches of at most per documents (of
// dataset), waits until every batch is acknowledged and fails the test unless
// each was acknowledged once, without error.
func deliverAll(t testing.TB, h *harness, dataset string, docs [][]byte, per int) {
	t.Helper()
	var outs []*outcome
	for i := 0; i < len(docs); i += per {
		end := min(i+per, len(docs))
		body := bytes.Join(docs[i:end], []byte("\n"))
		body = append(body, '\n')
		o := &outcome{}
		outs = append(outs, o)
		if err := h.sink.Consume(context.Background(), batch(dataset, uint64(i), body, end-i, o)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, osWait, fmt.Sprintf("%d batches of %s acknowledged", len(outs), dataset), func() bool {
		for _, o := range outs {
			if n, _ := o.get(); n == 0 {
				return false
			}
		}
		return true
	})
	for i, o := range outs {
		if n, err := o.get(); n != 1 || err != nil {
			t.Fatalf("batch %d of %s: Done %d times, last with %v; want once with nil", i, dataset, n, err)
		}
	}
}

// count refreshes index (a name or pattern) and returns its number of documents.
func count(t testing.TB, node *testutil.OpenSearch, index string) int {
	t.Helper()
	node.MustDo(t, "POST", "/"+index+"/_refresh", "")
	var c struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(node.MustDo(t, "GET", "/"+index+"/_count", ""), &c); err != nil {
		t.Fatal(err)
	}
	return c.Count
}

// fieldType returns the mapped type of field in index.
func fieldType(t testing.TB, node *testutil.OpenSearch, index, field string) string {
	t.Helper()
	var m map[string]struct {
		Mappings map[string]struct {
			Mapping map[string]struct {
				Type string `json:"type"`
			} `json:"mapping"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(node.MustDo(t, "GET", "/"+index+"/_mapping/field/"+field, ""), &m); err != nil {
		t.Fatal(err)
	}
	for _, idx := range m {
		for _, f := range idx.Mappings {
			for _, v := range f.Mapping {
				return v.Type
			}
		}
	}
	return ""
}

// goldenEvents returns the events of every parser's golden cases
// (internal/parse/*/testdata/*/want.json) by dataset, for the datasets that have
// a template, plus testdata/alerts.ndjson for vigil.alert; and the number of
// distinct documents of each (events without event.id get an id from the engine,
// the same event.id twice is one document).
func goldenEvents(t testing.TB) (map[string][][]byte, map[string]int) {
	t.Helper()
	files, err := filepath.Glob("../../parse/*/testdata/*/want.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	builtin := map[string]bool{}
	for _, d := range BuiltinDatasets {
		builtin[d] = true
	}
	docs := map[string][][]byte{}
	ids := map[string]map[string]bool{}
	distinct := map[string]int{}
	add := func(raw json.RawMessage, where string) {
		var e struct {
			Event struct {
				ID      string `json:"id"`
				Dataset string `json:"dataset"`
			} `json:"event"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if !builtin[e.Event.Dataset] {
			return // generic JSON and lines: no template of ours applies
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			t.Fatal(err)
		}
		docs[e.Event.Dataset] = append(docs[e.Event.Dataset], compact.Bytes())
		if ids[e.Event.Dataset] == nil {
			ids[e.Event.Dataset] = map[string]bool{}
		}
		switch {
		case e.Event.ID == "":
			distinct[e.Event.Dataset]++
		case !ids[e.Event.Dataset][e.Event.ID]:
			ids[e.Event.Dataset][e.Event.ID] = true
			distinct[e.Event.Dataset]++
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(data, &want); err != nil {
			continue // a case that expects only an error
		}
		for _, raw := range want.Events {
			add(raw, f)
		}
	}
	alerts, err := os.ReadFile("testdata/alerts.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(bytes.TrimSpace(alerts), []byte("\n")) {
		add(line, fmt.Sprintf("testdata/alerts.ndjson:%d", i+1))
	}
	return docs, distinct
}

// TestOpenSearchGoldenDocuments installs the ECS templates, indexes the golden
// documents of every built-in parser (and the two kinds of alert) into OpenSearch
// and gets no mapping error: every document is searchable and none is
// dead-lettered. The templates must have applied (source.ip is an ip, not the
// keyword dynamic mapping would give). Then an event with a value of the wrong
// type for its field goes to the dead-letter stream with OpenSearch's own error.
func TestOpenSearchGoldenDocuments(t *testing.T) {
	node := shared.get(t)
	h := newFlavourHarness(t, osConfig(node.URL, "golden-{event.dataset}"), FlavourOpenSearch)
	docs, distinct := goldenEvents(t)
	var datasets []string
	for d := range docs {
		datasets = append(datasets, d)
	}
	sort.Strings(datasets)
	if len(datasets) != len(BuiltinDatasets) {
		t.Fatalf("golden documents for %v; want every one of %v", datasets, BuiltinDatasets)
	}
	total := 0
	for _, d := range datasets {
		deliverAll(t, h, d, docs[d], 50)
		total += len(docs[d])
	}
	for _, l := range h.Letters() {
		t.Errorf("dead letter (mapping error?): %s: %s", l.ID, l.Reason)
	}
	if got := h.counter(h.metrics.SentEvents); got != float64(total) {
		t.Errorf("sent %v events, want %d", got, total)
	}
	for _, d := range datasets {
		if got := count(t, node, "golden-"+d); got != distinct[d] {
			t.Errorf("%s: %d documents in OpenSearch, want %d", d, got, distinct[d])
		}
	}
	t.Logf("%d golden documents of %d datasets indexed", total, len(datasets))
	// The templates applied: fields have their ECS types, not dynamic ones.
	for _, c := range []struct{ index, field, want string }{
		{"golden-aws.vpcflow", "source.ip", "ip"},
		{"golden-aws.vpcflow", "event.start", "date"},
		{"golden-aws.elb_logs", "aws.elb.backend_processing_time.sec", "float"},
		{"golden-apache.access", "http.response.status_code", "long"},
		{"golden-syslog", "message", "text"},
		{"golden-syslog", "log.syslog.structured_data", "flat_object"},
		{"golden-aws.cloudtrail", "aws.cloudtrail.flattened.request_parameters", "flat_object"},
		{"golden-aws.cloudtrail", "event.original", "keyword"},
		{"golden-vigil.alert", "vigil.alert.source_event", "flat_object"},
	} {
		if got := fieldType(t, node, c.index, c.field); got != c.want {
			t.Errorf("%s: %s mapped as %q, want %q", c.index, c.field, got, c.want)
		}
	}

	// A status code that is not a number: OpenSearch refuses the document.
	bad := []byte(`{"@timestamp":"2026-03-04T05:06:07Z","event":{"id":"conflict-1","dataset":"apache.access"},"http":{"response":{"status_code":"two hundred"}}}`)
	deliverAll(t, h, "apache.access", [][]byte{bad}, 1)
	letters := h.Letters()
	if len(letters) != 1 {
		t.Fatalf("want 1 dead letter, got %d", len(letters))
	}
	l := letters[0]
	if l.Stage != "sink" || l.ID != "sink:search:conflict-1" || !bytes.Equal(l.Original, bad) ||
		!strings.Contains(l.Reason, "mapper_parsing_exception") ||
		!strings.Contains(l.Reason, "failed to parse field [http.response.status_code] of type [long]") {
		t.Errorf("dead letter: stage %q id %q reason %q original %s", l.Stage, l.ID, l.Reason, l.Original)
	}
	if got := h.counter(h.metrics.DeadLettered, "sink"); got != 1 {
		t.Errorf("dead-lettered %v, want 1", got)
	}
}

// TestOpenSearchPerItemOutcomes sends batches mixing good documents, documents
// that conflict with the mapping and documents for a closed index: the good ones
// are searchable, the others dead-lettered with OpenSearch's reason, counts exact.
func TestOpenSearchPerItemOutcomes(t *testing.T) {
	node := shared.get(t)
	node.MustDo(t, "PUT", "/items-closed", `{"settings":{"number_of_replicas":0}}`)
	node.MustDo(t, "POST", "/items-closed/_close", "")
	h := newFlavourHarness(t, osConfig(node.URL, "items-{labels.to}"), FlavourOpenSearch)
	var docs [][]byte
	const n = 90
	for i := range n {
		var d string
		switch i % 3 {
		case 0:
			d = fmt.Sprintf(`{"@timestamp":"2026-03-04T05:06:07Z","event":{"id":"item-%d"},"labels":{"to":"open"},"source":{"ip":"192.0.2.%d"}}`, i, i)
		case 1:
			d = fmt.Sprintf(`{"@timestamp":"2026-03-04T05:06:07Z","event":{"id":"item-%d"},"labels":{"to":"open"},"source":{"ip":"host-%d"}}`, i, i)
		case 2:
			d = fmt.Sprintf(`{"@timestamp":"2026-03-04T05:06:07Z","event":{"id":"item-%d"},"labels":{"to":"closed"},"source":{"ip":"192.0.2.%d"}}`, i, i)
		}
		docs = append(docs, []byte(d))
	}
	deliverAll(t, h, "items", docs, 30)
	if got := count(t, node, "items-open"); got != n/3 {
		t.Errorf("items-open holds %d documents, want %d", got, n/3)
	}
	conflicts, closed := 0, 0
	for _, l := range h.Letters() {
		var num int
		if _, err := fmt.Sscanf(l.ID, "sink:search:item-%d", &num); err != nil {
			t.Fatalf("letter id %q", l.ID)
		}
		switch {
		case num%3 == 1 && strings.Contains(l.Reason, "mapper_parsing_exception") &&
			strings.Contains(l.Reason, "failed to parse field [source.ip] of type [ip]"):
			conflicts++
		case num%3 == 2 && strings.Contains(l.Reason, "index_closed_exception"):
			closed++
		default:
			t.Errorf("unexpected letter %s: %s", l.ID, l.Reason)
		}
	}
	if conflicts != n/3 || closed != n/3 {
		t.Errorf("dead letters: %d mapping conflicts, %d for the closed index; want %d each", conflicts, closed, n/3)
	}
	if got := h.counter(h.metrics.SentEvents); got != n/3 {
		t.Errorf("sent %v, want %d", got, n/3)
	}
	if got := h.counter(h.metrics.DeadLettered, "sink"); got != 2*n/3 {
		t.Errorf("dead-lettered %v, want %d", got, 2*n/3)
	}
	if l := h.Letters(); len(l) > 0 {
		t.Logf("OpenSearch's reasons, e.g.: %s | %s", l[0].Reason, l[len(l)-1].Reason)
	}
}

// TestOpenSearchDataStreams writes with op_type create to logs-<dataset>-default,
// which the installed template makes a data stream; a redelivered batch answers 409
// for every item, which counts as delivered: nothing is dead-lettered or doubled.
func TestOpenSearchDataStreams(t *testing.T) {
	node := shared.get(t)
	cfg := osConfig(node.URL, "logs-{event.dataset}-default")
	cfg.OpType = "create"
	h := newFlavourHarness(t, cfg, FlavourOpenSearch)
	var docs [][]byte
	for i := range 120 {
		docs = append(docs, []byte(fmt.Sprintf(`{"@timestamp":"2026-03-04T05:06:%02dZ","event":{"id":"ds-%d","dataset":"syslog"},"message":"line %d","log":{"syslog":{"priority":13}}}`, i%60, i, i)))
	}
	deliverAll(t, h, "syslog", docs, 40)
	var ds struct {
		DataStreams []struct {
			Name     string `json:"name"`
			Template string `json:"template"`
		} `json:"data_streams"`
	}
	if err := json.Unmarshal(node.MustDo(t, "GET", "/_data_stream/logs-syslog-default", ""), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.DataStreams) != 1 || ds.DataStreams[0].Template != "vigil-syslog" {
		t.Fatalf("data streams: %+v; want logs-syslog-default from template vigil-syslog", ds.DataStreams)
	}
	// The same batches again, as after a crash before the acknowledgement.
	deliverAll(t, h, "syslog", docs, 40)
	if got := count(t, node, "logs-syslog-default"); got != len(docs) {
		t.Errorf("data stream holds %d documents, want %d", got, len(docs))
	}
	if got := h.counter(h.metrics.SentEvents); got != float64(len(docs)) {
		t.Errorf("sent %v, want %d (the first time only)", got, len(docs))
	}
	if got := h.counter(h.metrics.Discarded, "already_indexed"); got != float64(len(docs)) {
		t.Errorf("already indexed %v, want %d (every redelivered item answered 409)", got, len(docs))
	}
	if l := h.Letters(); len(l) != 0 {
		t.Errorf("%d dead letters, first: %s", len(l), l[0].Reason)
	}
}

// TestOpenSearchOverload delivers with eight requests in flight to a node whose
// write thread pool has one thread and a queue of one: OpenSearch answers 429 for
// what it cannot queue, the sink retries those items, and every document arrives
// exactly once.
func TestOpenSearchOverload(t *testing.T) {
	node := testutil.StartOpenSearch(t, "thread_pool.write.size=1", "thread_pool.write.queue_size=1")
	node.MustDo(t, "PUT", "/pressure", `{"settings":{"number_of_shards":2,"number_of_replicas":0}}`)
	cfg := osConfig(node.URL, "pressure")
	cfg.InstallTemplates = false
	cfg.MaxInFlight = 8
	cfg.Batch.MaxEvents = 25
	h := newFlavourHarness(t, cfg, FlavourOpenSearch)
	const n = 1000
	docs := make([][]byte, 0, n)
	for i := range n {
		docs = append(docs, []byte(fmt.Sprintf(`{"@timestamp":"2026-03-04T05:06:07Z","event":{"id":"p-%d"},"message":"pressure %d"}`, i, i)))
	}
	deliverAll(t, h, "pressure", docs, 200)
	if got := count(t, node, "pressure"); got != n {
		t.Errorf("index holds %d documents, want %d", got, n)
	}
	throttled := h.counter(h.metrics.Errors, "item_429") + h.counter(h.metrics.Errors, "http_429")
	if throttled == 0 {
		t.Error("OpenSearch never answered 429: the test did not overload it")
	}
	if l := h.Letters(); len(l) != 0 {
		t.Errorf("%d dead letters, first: %s", len(l), l[0].Reason)
	}
	if got := h.counter(h.metrics.SentEvents); got != n {
		t.Errorf("sent %v, want %d", got, n)
	}
	t.Logf("%d documents; %v items or requests throttled (429) and retried; %v retries", n, throttled, h.counter(h.metrics.Retries))
}
