package pipeline_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
	"github.com/vigil-sec/vigil/internal/wire"
)

// testConfig is a one-source, one-archive config on a random port under dir.
func testConfig(t testing.TB, dir string, mutate func(*config.Config, *httpsource.Config, *archivesink.Config)) *config.Config {
	t.Helper()
	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	cfg.Buffer.AckWait = 5 * time.Second
	h := httpsource.NewConfig()
	h.Address = "127.0.0.1:0"
	h.PathDataset = true
	a := archivesink.NewConfig()
	a.MaxAge = 200 * time.Millisecond
	if mutate != nil {
		mutate(cfg, h, a)
	}
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "web", Type: "http", Format: "json", FormatOptions: opts, KeepOriginal: true, Settings: h}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, cfg *config.Config) (*pipeline.Pipeline, string) {
	t.Helper()
	return startWith(t, cfg, nil)
}

// startWith is start with a registry of the test's own (nil: the built-in one).
func startWith(t *testing.T, cfg *config.Config, reg *components.Registry) (*pipeline.Pipeline, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, nil))
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Version: "test", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	addr := ""
	if src, ok := p.Sources()["web"]; ok {
		addr = "http://" + src.(*httpsource.Source).Addr()
	}
	return p, addr
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func post(t *testing.T, url, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestEndToEndArchive(t *testing.T) {
	dir := t.TempDir()
	_, base := start(t, testConfig(t, dir, nil))

	code, out := post(t, base+"/v1/events/myapp", "application/json", `{"message":"one","user":{"name":"alice"},"@timestamp":"2026-01-02T03:04:05.123456789Z"}`)
	if code != 200 || out["accepted"] != 1.0 {
		t.Fatalf("object: %d %v", code, out)
	}
	code, out = post(t, base+"/v1/events/myapp", "application/json", `[{"message":"two"},{"message":"three"}]`)
	if code != 200 || out["accepted"] != 2.0 {
		t.Fatalf("array: %d %v", code, out)
	}
	code, out = post(t, base+"/v1/events/other.ds", "application/x-ndjson", "{\"message\":\"four\"}\n\n{\"message\":\"five\"}\n")
	if code != 200 || out["accepted"] != 2.0 {
		t.Fatalf("ndjson: %d %v", code, out)
	}
	code, out = post(t, base+"/v1/events/myapp", "text/plain", "six\nseven\n")
	if code != 200 || out["accepted"] != 2.0 {
		t.Fatalf("text: %d %v", code, out)
	}

	archive := filepath.Join(dir, "archive")
	var docs []map[string]any
	testutil.Eventually(t, 20*time.Second, "7 documents in the archive", func() bool {
		docs = testutil.ArchiveDocs(t, archive)
		return len(docs) >= 7
	})
	if len(docs) != 7 {
		t.Fatalf("want 7 documents, got %d", len(docs))
	}
	byMsg := map[string]map[string]any{}
	ids := map[string]bool{}
	for _, d := range docs {
		byMsg[fmt.Sprint(d["message"])] = d
		id := fmt.Sprint(testutil.Field(d, "event.id"))
		if len(id) != event.IDLen || ids[id] {
			t.Errorf("bad or duplicate event.id %q", id)
		}
		ids[id] = true
		if testutil.Field(d, "event.ingested") == nil || d["@timestamp"] == nil || testutil.Field(d, "agent.type") != "vigil" {
			t.Errorf("pipeline fields missing: %v", d)
		}
	}
	one := byMsg["one"]
	if one["@timestamp"] != "2026-01-02T03:04:05.123456789Z" {
		t.Errorf("@timestamp from the event, full precision: got %v", one["@timestamp"])
	}
	if testutil.Field(one, "user.name") != "alice" || testutil.Field(one, "event.dataset") != "myapp" {
		t.Errorf("fields of one: %v", one)
	}
	if testutil.Field(one, "event.original") == nil {
		t.Errorf("event.original missing")
	}
	if testutil.Field(byMsg["four"], "event.dataset") != "other.ds" {
		t.Errorf("dataset from path: %v", byMsg["four"])
	}
	if testutil.Field(byMsg["six"], "event.original") != "six" {
		t.Errorf("text line: %v", byMsg["six"])
	}
	// Files are laid out by dataset and hour and named by sequence range.
	matches, _ := filepath.Glob(filepath.Join(archive, "other.ds", "*", "*", "*", "*", "*-*.ndjson.gz"))
	if len(matches) == 0 {
		t.Errorf("no archive file under other.ds/YYYY/MM/DD/HH/")
	}
}

// TestRestartResumes stops the pipeline with events still unarchived (a long
// archive max_age), restarts it on the same data directory, and expects every event
// exactly once: the stop flushes, the restart resumes.
func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, func(_ *config.Config, _ *httpsource.Config, a *archivesink.Config) { a.MaxAge = time.Hour })
	p, base := start(t, cfg)
	var body bytes.Buffer
	for i := range 500 {
		fmt.Fprintf(&body, "{\"n\":%d}\n", i)
	}
	if code, out := post(t, base+"/v1/events/resume", "application/x-ndjson", body.String()); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	p2, base2 := start(t, testConfig(t, dir, nil))
	body.Reset()
	for i := 500; i < 1000; i++ {
		fmt.Fprintf(&body, "{\"n\":%d}\n", i)
	}
	if code, out := post(t, base2+"/v1/events/resume", "application/x-ndjson", body.String()); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	archive := filepath.Join(dir, "archive")
	testutil.Eventually(t, 20*time.Second, "1000 documents", func() bool { return len(testutil.ArchiveDocs(t, archive)) >= 1000 })
	if err := p2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[float64]int{}
	for _, d := range testutil.ArchiveDocs(t, archive) {
		seen[d["n"].(float64)]++
	}
	for i := range 1000 {
		if seen[float64(i)] != 1 {
			t.Fatalf("event %d archived %d times", i, seen[float64(i)])
		}
	}
}

// TestBackpressure fills a tiny intake stream on an ingest-only node: the source must
// answer 429 with Retry-After rather than discard anything, and every event that got
// a 200 must reach the archive once processing runs.
func TestBackpressure(t *testing.T) {
	dir := t.TempDir()
	tiny := func(c *config.Config, _ *httpsource.Config, _ *archivesink.Config) {
		c.Buffer.Intake.MaxBytes = 1 << 20
		c.Buffer.Intake.MaxAge = time.Hour
	}
	cfg := testConfig(t, dir, tiny)
	cfg.Role = config.RoleIngest
	p, base := start(t, cfg)

	accepted := 0
	saw429 := false
	rnd := make([]byte, 2000)
	for i := 0; i < 400 && !saw429; i++ {
		var body bytes.Buffer
		for j := range 50 {
			// Random padding, so compression cannot make the stream room.
			_, _ = rand.Read(rnd)
			fmt.Fprintf(&body, "{\"req\":%d,\"line\":%d,\"pad\":\"%x\"}\n", i, j, rnd)
		}
		resp, err := http.Post(base+"/v1/events/bp", "application/x-ndjson", &body)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			accepted += int(out["accepted"].(float64))
		case 429:
			saw429 = true
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		default:
			t.Fatalf("unexpected status %d: %v", resp.StatusCode, out)
		}
	}
	if !saw429 {
		t.Fatalf("the intake stream never pushed back (accepted %d)", accepted)
	}
	if accepted == 0 {
		t.Fatal("nothing was accepted before the stream filled")
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Now process everything that was acknowledged.
	cfg2 := testConfig(t, dir, tiny)
	start(t, cfg2)
	archive := filepath.Join(dir, "archive")
	var docs []map[string]any
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d accepted events archived", accepted), func() bool {
		docs = testutil.ArchiveDocs(t, archive)
		return len(docs) >= accepted
	})
	if len(docs) != accepted {
		t.Fatalf("accepted %d, archived %d", accepted, len(docs))
	}
}

// TestMalformedToDLQ checks on_malformed: dlq — good lines stored, bad lines in the
// dead-letter stream with their reason and original bytes.
func TestMalformedToDLQ(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, func(_ *config.Config, h *httpsource.Config, _ *archivesink.Config) { h.OnMalformed = "dlq" })
	p, base := start(t, cfg)
	code, out := post(t, base+"/v1/events/mixed", "application/x-ndjson", "{\"ok\":1}\n{\"bad\":\n{\"ok\":2}\n")
	if code != 200 || out["accepted"] != 2.0 || out["dead_lettered"] != 1.0 {
		t.Fatalf("%d %v", code, out)
	}
	js := p.Stream().JetStream()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, wire.DLQSubject("decode"))
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != `{"bad":` {
		t.Errorf("original bytes: %q", msg.Data)
	}
	if !strings.Contains(msg.Header.Get(wire.HeaderReason), "line 2") || msg.Header.Get(wire.HeaderSource) != "web" ||
		msg.Header.Get(wire.HeaderDataset) != "mixed" {
		t.Errorf("headers: %v", msg.Header)
	}
	testutil.Eventually(t, 20*time.Second, "2 documents", func() bool {
		return len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))) == 2
	})
	_ = jetstream.ErrMsgNotFound
}

// TestValidationToDLQ enables the validate processor with an operator's schema: a
// valid event is archived, an invalid one goes to vigil.dlq.validate with the schema
// error and the raw record.
func TestValidationToDLQ(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, func(c *config.Config, _ *httpsource.Config, _ *archivesink.Config) {
		c.Processing.Validate.Enabled = true
		c.Processing.Validate.Datasets = map[string]string{"checked": "testdata/checked.schema.json"}
	})
	p, base := start(t, cfg)
	code, out := post(t, base+"/v1/events/checked", "application/x-ndjson", "{\"n\":1}\n{\"n\":\"one\"}\n")
	if code != 200 || out["accepted"] != 2.0 {
		t.Fatalf("%d %v", code, out)
	}
	testutil.Eventually(t, 20*time.Second, "1 valid document archived", func() bool {
		return len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))) == 1
	})
	ctx := context.Background()
	s, err := p.Stream().JetStream().Stream(ctx, stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	testutil.Eventually(t, 10*time.Second, "a validate dead letter", func() bool {
		msg, err = s.GetLastMsgForSubject(ctx, wire.DLQSubject("validate"))
		return err == nil
	})
	if string(msg.Data) != `{"n":"one"}` {
		t.Errorf("original: %q", msg.Data)
	}
	if r := msg.Header.Get(wire.HeaderReason); !strings.Contains(r, "/n") {
		t.Errorf("reason should name the field: %q", r)
	}
	if docs := testutil.ArchiveDocs(t, filepath.Join(dir, "archive")); docs[0]["n"] != 1.0 {
		t.Errorf("archived: %v", docs[0])
	}
}

// TestOversizedEventDeadLettered posts one record whose ECS document (message plus
// event.original) exceeds the embedded stream's 8 MiB max payload: the intake message
// must go to vigil.dlq.process instead of being retried forever, and the pipeline
// must go on with the next records.
func TestOversizedEventDeadLettered(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, func(c *config.Config, h *httpsource.Config, _ *archivesink.Config) {
		h.MaxBodyBytes = 16 << 20
		// S2 leaves hex as large as it is (gzip would halve it and let it through).
		c.Processing.EventsCompression = "s2"
	})
	p, base := start(t, cfg)
	rnd := make([]byte, 2<<20)
	_, _ = rand.Read(rnd)
	big := fmt.Sprintf(`{"message":"%x"}`, rnd) // 4 MiB of hex, twice in the document
	if code, out := post(t, base+"/v1/events/big", "application/json", big); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	if code, out := post(t, base+"/v1/events/small", "application/json", `{"message":"after"}`); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	testutil.Eventually(t, 30*time.Second, "the small event archived", func() bool {
		return len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))) == 1
	})
	s, err := p.Stream().JetStream().Stream(context.Background(), stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	testutil.Eventually(t, 30*time.Second, "a process dead letter", func() bool {
		msg, err = s.GetLastMsgForSubject(context.Background(), wire.DLQSubject("process"))
		return err == nil
	})
	if !strings.Contains(msg.Header.Get(wire.HeaderReason), "max payload") || msg.Header.Get(wire.HeaderDataset) != "big" {
		t.Errorf("letter headers: %v", msg.Header)
	}
}

// TestEventsCompression: processing compresses event batches as
// processing.events_compression says (auto: as the archive does), and an archive of
// the same compression writes them byte for byte as they crossed the stream
// (compress once), while one of another compression decompresses and compresses
// them again; every event is archived once either way.
func TestEventsCompression(t *testing.T) {
	for _, tc := range []struct {
		setting, archive, wantEnc string
		passThrough               bool
	}{
		{"auto", "gzip", event.EncodingGzip, true},
		{"auto", "zstd", event.EncodingZstd, true},
		{"gzip", "gzip", event.EncodingGzip, true},
		{"s2", "gzip", event.EncodingS2, false},
		{"gzip", "zstd", event.EncodingGzip, false},
	} {
		t.Run(tc.setting+"_"+tc.archive, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, func(c *config.Config, _ *httpsource.Config, a *archivesink.Config) {
				c.Processing.EventsCompression = tc.setting
				a.Compression = tc.archive
				// The archive's own level differs from the stream's (1 unless auto):
				// a frame compressed again would differ from the stream's body.
				if tc.setting != "auto" {
					a.CompressionLevel = 9
				}
			})
			p, base := start(t, cfg)
			var body strings.Builder
			for i := range 300 {
				fmt.Fprintf(&body, `{"message":"event %d of the compression test","n":%d}`+"\n", i, i)
			}
			for range 3 {
				if code, out := post(t, base+"/v1/events/web", "application/x-ndjson", body.String()); code != 200 {
					t.Fatalf("%d %v", code, out)
				}
			}
			testutil.Eventually(t, 30*time.Second, "900 events archived", func() bool {
				return len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))) == 900
			})
			s, err := p.Stream().JetStream().Stream(context.Background(), stream.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			files, err := filepath.Glob(filepath.Join(dir, "archive", "web", "*", "*", "*", "*", "*"))
			if err != nil || len(files) == 0 {
				t.Fatalf("archive files: %v %v", files, err)
			}
			for _, f := range files {
				// <epoch>-<first seq>-<last seq>.ndjson.<ext>
				var epoch int64
				var first, last uint64
				if _, err := fmt.Sscanf(filepath.Base(f), "%d-%d-%d.", &epoch, &first, &last); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				var bodies []byte
				for seq := first; seq <= last; seq++ {
					m, err := s.GetMsg(context.Background(), seq)
					if err != nil {
						t.Fatalf("events seq %d: %v", seq, err)
					}
					if enc := m.Header.Get(wire.HeaderEncoding); enc != tc.wantEnc {
						t.Fatalf("events seq %d: encoding %q, want %q", seq, enc, tc.wantEnc)
					}
					bodies = append(bodies, m.Data...)
				}
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if same := bytes.Equal(data, bodies); same != tc.passThrough {
					t.Errorf("%s: file is the stream's bodies as they are: %v, want %v", filepath.Base(f), same, tc.passThrough)
				}
			}
			seen := map[float64]int{}
			for _, d := range testutil.ArchiveDocs(t, filepath.Join(dir, "archive")) {
				n, _ := d["n"].(float64)
				seen[n]++
			}
			for i := range 300 {
				if seen[float64(i)] != 3 {
					t.Errorf("event %d archived %d times, want 3 (one per post)", i, seen[float64(i)])
				}
			}
		})
	}
}
