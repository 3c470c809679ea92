package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/deadletter"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/stream"
	vtest "github.com/vigil-sec/vigil/internal/testutil"
	"github.com/vigil-sec/vigil/internal/wire"
)

// node is a running embedded pipeline: one http source "web" (format json,
// on_malformed: dlq) and a file archive of every dataset.
type node struct {
	p       *pipeline.Pipeline
	st      *stream.Stream
	base    string
	archive string
}

func startNode(t testing.TB) *node {
	t.Helper()
	dir := t.TempDir()
	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	cfg.Buffer.AckWait = 5 * time.Second
	h := httpsource.NewConfig()
	h.Address = "127.0.0.1:0"
	h.PathDataset = true
	h.OnMalformed = "dlq"
	a := archivesink.NewConfig()
	a.MaxAge = 100 * time.Millisecond
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "web", Type: "http", Format: "json", FormatOptions: opts, KeepOriginal: true, Settings: h}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return &node{p: p, st: p.Stream(), base: "http://" + p.Sources()["web"].(*httpsource.Source).Addr(),
		archive: filepath.Join(dir, "archive")}
}

// postNDJSON posts to the http source and expects a 200.
func (n *node) postNDJSON(t *testing.T, dataset, body string) {
	t.Helper()
	resp, err := http.Post(n.base+"/v1/events/"+dataset, "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post: HTTP %d", resp.StatusCode)
	}
}

// storeRaw stores records in intake the way a source that does not validate them
// (syslog, file) would, so that processing is what rejects them.
func (n *node) storeRaw(t *testing.T, source, format, dataset string, recs ...string) uint64 {
	t.Helper()
	var b event.RawBatch
	for _, r := range recs {
		b.Add([]byte(r))
	}
	msg := nats.NewMsg(wire.IntakeSubject(source))
	msg.Header.Set(wire.HeaderEncoding, wire.EncodingS2)
	msg.Header.Set(wire.HeaderFormat, format)
	if dataset != "" {
		msg.Header.Set(wire.HeaderDataset, dataset)
	}
	msg.Header.Set(wire.HeaderReceived, strconv.FormatInt(time.Now().UnixNano(), 10))
	msg.Header.Set(wire.HeaderCount, strconv.Itoa(len(recs)))
	msg.Data = b.Encode()
	ack, err := n.st.Publish(context.Background(), msg, "")
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// waitLetters waits until the DLQ holds want letters selected by f.
func (n *node) waitLetters(t *testing.T, f Filter, want int) *Summary {
	t.Helper()
	var sum *Summary
	vtest.Eventually(t, 20*time.Second, fmt.Sprintf("%d dead letters", want), func() bool {
		var err error
		sum, err = Summarize(context.Background(), n.st, f)
		if err != nil {
			t.Fatal(err)
		}
		return sum.Total == want
	})
	return sum
}

func (n *node) waitDocs(t *testing.T, want int) []map[string]any {
	t.Helper()
	var docs []map[string]any
	vtest.Eventually(t, 20*time.Second, fmt.Sprintf("%d archived documents", want), func() bool {
		docs = vtest.ArchiveDocs(t, n.archive)
		return len(docs) >= want
	})
	if len(docs) != want {
		t.Fatalf("want %d archived documents, got %d", want, len(docs))
	}
	return docs
}

func parseOriginString(t *testing.T, s string) event.Origin {
	t.Helper()
	var o event.Origin
	if _, err := fmt.Sscanf(s, "%d:%d:%d", &o.Epoch, &o.Seq, &o.Index); err != nil {
		t.Fatalf("origin %q: %v", s, err)
	}
	return o
}

// TestListShowReplay dead-letters a record processing rejects (it keeps its origin)
// and a line the http source rejects, lists and shows them, replays without a fix
// (the record comes back, once, with the same origin), then with the fix, and finds
// both archived, the first with the event ID it would have had.
func TestListShowReplay(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	// A source this config does not know: its letters are replayed all the same.
	intakeSeq := n.storeRaw(t, "syslog1", "json", "app", "plain text, not JSON")
	n.postNDJSON(t, "mixed", "{\"ok\":1}\n{\"bad\":\n")
	n.waitDocs(t, 1)
	sum := n.waitLetters(t, Filter{}, 2)

	if len(sum.Groups) != 2 || sum.LastSeq == 0 {
		t.Fatalf("summary: %+v", sum)
	}
	sources := map[string]Group{}
	for _, g := range sum.Groups {
		sources[g.Source] = g
		if g.Stage != "decode" || g.Count != 1 || g.Reason == "" || g.Last.IsZero() || g.Bytes == 0 {
			t.Errorf("group: %+v", g)
		}
	}
	if _, ok := sources["syslog1"]; !ok {
		t.Errorf("no group of source syslog1: %+v", sum.Groups)
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want int
	}{
		{"stage", Filter{Stage: "decode"}, 2},
		{"other stage", Filter{Stage: "parse"}, 0},
		{"source", Filter{Source: "web"}, 1},
		{"both", Filter{Stage: "decode", Source: "syslog1"}, 1},
		{"other source", Filter{Source: "nope"}, 0},
		{"since", Filter{After: time.Now().Add(-time.Hour)}, 2},
		{"future", Filter{After: time.Now().Add(time.Hour)}, 0},
		{"up to", Filter{UpTo: 1}, 1},
		{"from", Filter{From: sum.LastSeq}, 1},
	} {
		s, err := Summarize(ctx, n.st, tc.f)
		if err != nil || s.Total != tc.want {
			t.Errorf("%s: %+v, err %v; want %d", tc.name, s, err, tc.want)
		}
	}

	entries, err := Entries(ctx, n.st, Filter{Source: "syslog1"}, 10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("entries: %v %v", entries, err)
	}
	e := entries[0]
	if e.Original != "plain text, not JSON" || e.OriginalBase64 || e.Source != "syslog1" || e.Dataset != "app" ||
		e.Format != "json" || e.Time.IsZero() || e.DeadLettered.IsZero() || e.Size != len(e.Original) {
		t.Errorf("entry: %+v", e)
	}
	origin := parseOriginString(t, e.Origin)
	if origin.Seq != intakeSeq || origin.Index != 0 || origin.Epoch != n.st.Epoch() {
		t.Errorf("origin %q, want intake seq %d", e.Origin, intakeSeq)
	}

	// No fix yet: the record goes through the same parser and comes back, once.
	res, err := Replay(ctx, n.st, Filter{Source: "syslog1"}, ReplayOptions{}, nil)
	if err != nil || res.Replayed != 1 || !res.Done || res.Remaining != 0 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	vtest.Eventually(t, 20*time.Second, "the record dead-lettered again", func() bool {
		again, err := Entries(ctx, n.st, Filter{Source: "syslog1"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) == 1 && again[0].Sequence != e.Sequence {
			if again[0].Origin != e.Origin {
				t.Errorf("origin changed on replay: %q, was %q", again[0].Origin, e.Origin)
			}
			return true
		}
		return false
	})

	// The fix: parse them as lines. Both letters re-enter intake and are archived.
	res, err = Replay(ctx, n.st, Filter{}, ReplayOptions{Format: "lines"}, nil)
	if err != nil || res.Replayed != 2 || !res.Done {
		t.Fatalf("replay: %+v %v", res, err)
	}
	docs := n.waitDocs(t, 3)
	byOriginal := map[string]map[string]any{}
	for _, d := range docs {
		byOriginal[fmt.Sprint(vtest.Field(d, "event.original"))] = d
	}
	plain := byOriginal["plain text, not JSON"]
	if plain == nil {
		t.Fatalf("replayed record not archived: %v", docs)
	}
	if id := vtest.Field(plain, "event.id"); id != event.DeriveID(origin, 0) {
		t.Errorf("event.id %v, want %s (the ID from the record's origin)", id, event.DeriveID(origin, 0))
	}
	if vtest.Field(plain, "event.dataset") != "app" {
		t.Errorf("dataset: %v", plain)
	}
	bad := byOriginal[`{"bad":`]
	if bad == nil || vtest.Field(bad, "event.dataset") != "mixed" {
		t.Errorf("replayed line: %v", bad)
	}
	if s, _ := Summarize(ctx, n.st, Filter{}); s.Total != 0 {
		t.Errorf("DLQ not empty after replay: %+v", s)
	}
}

// TestReplayInterrupted stores a letter's copy as a replay would and then stops, as
// if killed before removing the letter: running the replay again must not store
// the record a second time.
func TestReplayInterrupted(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	n.postNDJSON(t, "app", "not json\n")
	n.waitLetters(t, Filter{}, 1)

	info, err := dlqInfo(ctx, n.st)
	if err != nil {
		t.Fatal(err)
	}
	var l *letter
	if _, err := scan(ctx, n.st, Filter{}, false, func(x *letter) bool { l = x; return false }); err != nil || l == nil {
		t.Fatalf("scan: %v", err)
	}
	msg, err := replayMsg(l, "lines")
	if err != nil {
		t.Fatal(err)
	}
	first, err := n.st.Publish(ctx, msg, ReplayID(info.Created.UnixNano(), l.seq))
	if err != nil || first.Duplicate {
		t.Fatalf("first publish: %+v %v", first, err)
	}

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	res, err := Replay(ctx, n.st, Filter{}, ReplayOptions{Format: "lines"}, m)
	if err != nil || res.Replayed != 1 || res.Duplicates != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	intake, err := n.st.Usages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if intake[0].LastSeq != first.Sequence {
		t.Errorf("intake last sequence %d, want %d: the re-run stored a second copy", intake[0].LastSeq, first.Sequence)
	}
	docs := n.waitDocs(t, 1)
	if vtest.Field(docs[0], "event.original") != "not json" {
		t.Errorf("doc: %v", docs[0])
	}
	if got := counterValue(t, reg, "vigil_dlq_replayed_total", "decode"); got != 1 {
		t.Errorf("replayed counter %v", got)
	}
	if s, _ := Summarize(ctx, n.st, Filter{}); s.Total != 0 {
		t.Errorf("DLQ not empty: %+v", s)
	}
}

// TestReplayChunks replays five letters, stored as three messages of 2, 2 and 1
// (the letters of one request share a message), two at a time, continuing from Next.
func TestReplayChunks(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	n.postNDJSON(t, "app", "a\nb\n")
	n.postNDJSON(t, "app", "c\nd\n")
	n.postNDJSON(t, "app", "e\n")
	sum := n.waitLetters(t, Filter{}, 5)
	if ds, err := n.st.JetStream().Stream(ctx, stream.DLQStream); err != nil {
		t.Fatal(err)
	} else if info, err := ds.Info(ctx); err != nil || info.State.Msgs != 3 {
		t.Fatalf("want the 5 letters in 3 messages: %+v %v", info.State, err)
	}
	if len(sum.Groups) != 1 || sum.Groups[0].Reason == "" || strings.ContainsAny(sum.Groups[0].Reason, "12345") {
		t.Errorf("one group with numbers masked: %+v", sum.Groups)
	}
	f := Filter{UpTo: sum.LastSeq}
	var remaining []int
	replayed := 0
	for range 10 {
		res, err := Replay(ctx, n.st, f, ReplayOptions{Limit: 2, Format: "lines"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		replayed += res.Replayed
		remaining = append(remaining, res.Remaining)
		if res.Done {
			break
		}
		f.From = res.Next
	}
	if replayed != 5 || fmt.Sprint(remaining) != "[3 1 0]" {
		t.Errorf("replayed %d, remaining per chunk %v; want 5 and [3 1 0]", replayed, remaining)
	}
	n.waitDocs(t, 5)
}

// TestReplaySinkLetters sends an ECS document a destination rejected back to the
// events stream, and leaves a letter that holds no document in the DLQ.
func TestReplaySinkLetters(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	doc := `{"@timestamp":"2026-01-02T03:04:05Z","message":"rejected once","event":{"id":"abc","dataset":"app"}}`
	for _, l := range []component.Letter{
		{Stage: "sink", Reason: "mapper_parsing_exception", Source: "web", Dataset: "app", Original: []byte(doc)},
		{Stage: "sink", Reason: "corrupt event batch: s2: corrupt input", Source: "web", Dataset: "app", Original: []byte{0xff, 0x00, 0x12}},
	} {
		if _, err := n.st.Publish(ctx, wire.LetterMsg(l), ""); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Replay(ctx, n.st, Filter{Stage: "sink"}, ReplayOptions{}, nil)
	if err != nil || res.Replayed != 1 || res.Skipped != 1 || len(res.Skips) != 1 || !res.Done {
		t.Fatalf("replay: %+v %v", res, err)
	}
	docs := n.waitDocs(t, 1)
	if docs[0]["message"] != "rejected once" || vtest.Field(docs[0], "event.id") != "abc" {
		t.Errorf("doc: %v", docs[0])
	}
	left, err := Entries(ctx, n.st, Filter{}, 10)
	if err != nil || len(left) != 1 || !left[0].OriginalBase64 {
		t.Fatalf("left: %+v %v", left, err)
	}
}

// TestReplayWholeBatch replays an intake message processing could not handle at all
// (unknown format), dead-lettered whole: every record in it comes back.
func TestReplayWholeBatch(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	n.storeRaw(t, "elsewhere", "no_such_format", "app", "one", "two")
	n.waitLetters(t, Filter{Stage: "decode", Source: "elsewhere"}, 1)
	res, err := Replay(ctx, n.st, Filter{Source: "elsewhere"}, ReplayOptions{Format: "lines"}, nil)
	if err != nil || res.Replayed != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	docs := n.waitDocs(t, 2)
	got := map[any]bool{}
	for _, d := range docs {
		got[vtest.Field(d, "event.original")] = true
	}
	if !got["one"] || !got["two"] {
		t.Errorf("docs: %v", docs)
	}
}

// TestAPI drives the HTTP API.
func TestAPI(t *testing.T) {
	n := startNode(t)
	n.postNDJSON(t, "app", "x\n")
	n.postNDJSON(t, "app", "y\n")
	n.waitLetters(t, Filter{}, 2)
	mux := http.NewServeMux()
	NewAPI(n.st, prometheus.NewRegistry(), nil).Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(PathSummary + "?source=web&since=1h")
	var sum Summary
	if code != 200 || json.Unmarshal([]byte(body), &sum) != nil || sum.Total != 2 {
		t.Fatalf("summary: %d %s", code, body)
	}
	code, body = get(PathEntries + "?limit=1")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	var e Entry
	if code != 200 || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &e) != nil || e.Original != "x" {
		t.Fatalf("entries: %d %s", code, body)
	}
	// A page holds at most MaxEntries letters, so that no request makes the node
	// hold or send an unbounded answer.
	if code, body := get(PathEntries + "?limit=1000"); code != 200 || strings.Count(body, "\n") != 2 {
		t.Errorf("limit=1000: %d %s", code, body)
	}
	for _, bad := range []string{"?since=yesterday", "?stage=a.b", "?source=*", "?limit=0", "?from=x", "?after=monday",
		"?limit=1001", "?limit=10000"} {
		if code, body := get(PathEntries + bad); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	// EachEntry hands letters over one at a time and stops at the first error.
	calls, errStop := 0, errors.New("stop")
	if err := EachEntry(context.Background(), n.st, Filter{}, 10, func(*Entry) error { calls++; return errStop }); err != errStop || calls != 1 {
		t.Errorf("EachEntry: %v after %d calls, want stop after 1", err, calls)
	}
	resp, err := http.Post(srv.URL+PathReplay+"?limit=1&format=lines", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var res ReplayResult
	_ = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != 200 || res.Replayed != 1 || res.Remaining != 1 || res.Done || res.Next == 0 {
		t.Fatalf("replay: %d %+v", resp.StatusCode, res)
	}
	if code, _ := get(PathReplay); code != http.StatusMethodNotAllowed {
		t.Errorf("GET replay: %d", code)
	}
}

func TestMaskNumbers(t *testing.T) {
	tests := []struct{ give, want string }{
		{"line 2: unexpected end of JSON input", "line N: unexpected end of JSON input"},
		{"record 17 at offset 1234", "record N at offset N"},
		{"s2: corrupt input", "s2: corrupt input"},
		{"utf8 x2 0x1f", "utf8 x2 0x1f"},
		{"(42)", "(N)"},
		{"", ""},
		{strings.Repeat("é", 300), strings.Repeat("é", 100) + "…"},
	}
	for _, tt := range tests {
		if got := maskNumbers(tt.give); got != tt.want {
			t.Errorf("maskNumbers(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	tests := []struct {
		give string
		want time.Duration
		err  bool
	}{
		{"30m", 30 * time.Minute, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"0s", 0, true},
		{"-1h", 0, true},
		{"d", 0, true},
		{"yesterday", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSince(tt.give)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseSince(%q) = %v, %v", tt.give, got, err)
		}
	}
}

// counterValue reads one stage's value of a counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, stage string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "stage" && lp.GetValue() == stage {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestReplayPartOfABatch: a message of two letters of which only one can be
// replayed is replaced by a message of the other; nothing is lost.
func TestReplayPartOfABatch(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	w := deadletter.NewWriter(n.st, config.Defaults().Buffer.DLQ, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	letters := []component.Letter{
		{Stage: "sink", Source: "web", Dataset: "app", Reason: "mapping", Original: []byte(`{"message":"fixed"}`), ID: "t:1"},
		{Stage: "sink", Source: "web", Dataset: "app", Reason: "corrupt", Original: []byte("not a document"), ID: "t:2"},
	}
	if err := w.Store(ctx, letters); err != nil {
		t.Fatal(err)
	}
	sum := n.waitLetters(t, Filter{}, 2)
	if sum.Total != 2 {
		t.Fatalf("summary %+v", sum)
	}
	res, err := Replay(ctx, n.st, Filter{}, ReplayOptions{}, nil)
	if err != nil || res.Replayed != 1 || res.Skipped != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	entries, err := Entries(ctx, n.st, Filter{}, 10)
	if err != nil || len(entries) != 1 || entries[0].Original != "not a document" || entries[0].Reason != "corrupt" {
		t.Fatalf("left in the DLQ: %+v %v", entries, err)
	}
	docs := n.waitDocs(t, 1)
	if docs[0]["message"] != "fixed" {
		t.Errorf("replayed: %v", docs)
	}
}
