package syslogsource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
	"github.com/vigil-sec/vigil/internal/wire"
)

// registry is the built-in registry with the syslog source, so the tests do not
// depend on internal/components listing it.
func registry() *components.Registry {
	reg := components.Builtin()
	reg.Sources["syslog"] = components.SourceFactory{
		NewConfig: func() config.Component { return syslogsource.NewConfig() },
		New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
			return syslogsource.New(c.(*syslogsource.Config), d), nil
		},
	}
	return reg
}

// testConfig is one syslog source (TCP and UDP on random ports, format syslog) and
// one archive under dir.
func testConfig(t testing.TB, dir string, mutate func(*config.Config, *syslogsource.Config)) *config.Config {
	t.Helper()
	reg := registry()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	cfg.Buffer.AckWait = 5 * time.Second
	s := syslogsource.NewConfig()
	s.TCP = "127.0.0.1:0"
	s.UDP = "127.0.0.1:0"
	if mutate != nil {
		mutate(cfg, s)
	}
	a := archivesink.NewConfig()
	a.MaxAge = 200 * time.Millisecond
	opts, _ := reg.FormatConfig("syslog")
	cfg.Sources = []*config.Source{{Name: "syslog", Type: "syslog", Format: s.DefaultFormat(), FormatOptions: opts, KeepOriginal: true, Settings: s}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start runs the pipeline until the test ends and returns its syslog source (nil on
// a node without sources).
func start(t testing.TB, cfg *config.Config) (*pipeline.Pipeline, *syslogsource.Source) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Version: "test", Registry: registry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded: a source holding messages for a full stream retries until then.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	src, _ := p.Sources()["syslog"].(*syslogsource.Source)
	return p, src
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// waitDocs polls the archive until it holds n documents and returns them by message,
// trimmed: rsyslog's RFC 5424 templates keep the space that followed the tag of a
// local message, and the parser rightly keeps MSG as sent.
func waitDocs(t testing.TB, archive string, n int) map[string]map[string]any {
	t.Helper()
	var docs []map[string]any
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d documents in the archive", n), func() bool {
		docs = testutil.ArchiveDocs(t, archive)
		return len(docs) >= n
	})
	if len(docs) != n {
		t.Fatalf("want %d documents, got %d", n, len(docs))
	}
	byMsg := map[string]map[string]any{}
	for _, d := range docs {
		byMsg[strings.TrimSpace(fmt.Sprint(d["message"]))] = d
	}
	return byMsg
}

// checkFields compares dotted fields of a document with what is expected.
func checkFields(t testing.TB, doc map[string]any, want map[string]any) {
	t.Helper()
	if doc == nil {
		t.Errorf("document missing; want %v", want)
		return
	}
	for path, w := range want {
		if got := testutil.Field(doc, path); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s: got %v, want %v (message %q)", path, got, w, doc["message"])
		}
	}
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p, src := start(t, testConfig(t, dir, func(_ *config.Config, s *syslogsource.Config) { s.MaxMessageBytes = 1024 }))

	c, err := net.Dial("tcp", src.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	oct := `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] tcp octet counted`
	big := "<13>1 - - - - - - " + strings.Repeat("z", 2000)
	data := "<34>Oct 11 22:14:15 mymachine su[123]: tcp newline rfc3164\n" +
		fmt.Sprintf("%d %s", len(oct), oct) +
		"<86>1 2024-05-06T07:08:09.5+02:00 web01 sshd 4242 - - tcp crlf rfc5424\r\n" +
		big + "\n" +
		"<14>1 - - app - - - last line without LF"
	if _, err := io.WriteString(c, data); err != nil {
		t.Fatal(err)
	}
	c.Close()

	u, err := net.Dial("udp", src.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{
		"<30>1 2024-05-06T07:08:09Z fw01 kernel - - - udp rfc5424\n",
		"<4>May  6 07:08:09 fw02 named: udp rfc3164",
		"",
	} {
		if _, err := io.WriteString(u, d); err != nil {
			t.Fatal(err)
		}
	}
	u.Close()

	docs := waitDocs(t, filepath.Join(dir, "archive"), 6)
	checkFields(t, docs["tcp newline rfc3164"], map[string]any{
		"event.dataset": "syslog", "log.syslog.priority": 34, "log.syslog.facility.code": 4,
		"log.syslog.severity.code": 2, "log.syslog.hostname": "mymachine", "log.syslog.appname": "su",
		"process.pid": 123, "event.original": "<34>Oct 11 22:14:15 mymachine su[123]: tcp newline rfc3164",
	})
	checkFields(t, docs["tcp octet counted"], map[string]any{
		"log.syslog.priority": 165, "log.syslog.facility.name": "local4", "log.syslog.severity.name": "notice",
		"log.syslog.hostname": "mymachine.example.com", "log.syslog.appname": "evntslog", "log.syslog.msgid": "ID47",
		"log.syslog.structured_data.exampleSDID@32473.iut": "3", "@timestamp": "2003-10-11T22:14:15.003Z",
	})
	checkFields(t, docs["tcp crlf rfc5424"], map[string]any{
		"log.syslog.hostname": "web01", "log.syslog.appname": "sshd", "process.pid": 4242, "log.syslog.version": "1",
	})
	checkFields(t, docs["last line without LF"], map[string]any{"log.syslog.appname": "app"})
	checkFields(t, docs["udp rfc5424"], map[string]any{"log.syslog.hostname": "fw01", "log.syslog.priority": 30})
	checkFields(t, docs["udp rfc3164"], map[string]any{"log.syslog.hostname": "fw02", "log.syslog.severity.code": 4})

	// The oversized message is in the dead-letter stream, cut to max_message_bytes.
	js := p.Stream().JetStream()
	st, err := js.Stream(context.Background(), stream.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(context.Background(), wire.DLQSubject("intake"))
	if err != nil {
		t.Fatalf("no dead letter for the oversized message: %v", err)
	}
	if string(msg.Data) != big[:1024] {
		t.Errorf("dead letter holds %d bytes, want the first 1024 of the message", len(msg.Data))
	}
	if r := msg.Header.Get(wire.HeaderReason); !strings.Contains(r, "max_message_bytes") || !strings.Contains(r, "2018 bytes") {
		t.Errorf("reason: %q", r)
	}
	if msg.Header.Get(wire.HeaderSource) != "syslog" {
		t.Errorf("headers: %v", msg.Header)
	}
}

// metric sums every sample of a counter or gauge family.
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
