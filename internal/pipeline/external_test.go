package pipeline_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// natsServer is a nats-server started as a separate process with `go tool
// nats-server` (pinned in go.mod), with JetStream fsyncing every write as Vigil's
// docs tell operators to configure it.
type natsServer struct {
	cmd  *exec.Cmd
	url  string
	conf string
	done chan struct{}
}

func startNATS(t *testing.T, dir string, port int) *natsServer {
	t.Helper()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
  sync_interval: always
}
`, port, filepath.Join(dir, "js"))), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &natsServer{url: fmt.Sprintf("nats://127.0.0.1:%d", port), conf: conf}
	s.start(t)
	return s
}

func (s *natsServer) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("go", "tool", "nats-server", "-c", s.conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	host := s.url[len("nats://"):]
	testutil.Eventually(t, 60*time.Second, "nats-server listening", func() bool {
		c, err := net.Dial("tcp", host)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func (s *natsServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// externalConfig starts a nats-server and returns it with the test config on data
// directory dir, buffered on that server, changed by mutate when not nil.
func externalConfig(t *testing.T, dir string, mutate func(*config.Buffer)) (*natsServer, *config.Config) {
	t.Helper()
	ns := startNATS(t, t.TempDir(), testutil.FreePort(t))
	cfg := testConfig(t, dir, nil)
	cfg.Buffer = config.Defaults().Buffer
	cfg.Buffer.Type = "nats"
	cfg.Buffer.URLs = []string{ns.url}
	if mutate != nil {
		mutate(&cfg.Buffer)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return ns, cfg
}

// TestExternalNATS runs the same pipeline against a separately started nats-server,
// stops the server mid-stream (sources must answer 503, not 200), restarts it, and
// checks that every acknowledged event is archived.
func TestExternalNATS(t *testing.T) {
	dir := t.TempDir()
	ns, cfg := externalConfig(t, dir, func(b *config.Buffer) {
		b.AckWait = 5 * time.Second
		b.PublishTimeout = 2 * time.Second
	})
	p, base := start(t, cfg)
	if p.Stream().Embedded() {
		t.Fatal("expected an external stream")
	}
	accepted := 0
	for i := range 10 {
		code, out := post(t, base+"/v1/events/ext", "application/json", fmt.Sprintf(`{"n":%d}`, i))
		if code != 200 {
			t.Fatalf("%d %v", code, out)
		}
		accepted++
	}

	ns.stop()
	code, _ := post(t, base+"/v1/events/ext", "application/json", `{"n":"during outage"}`)
	if code != 503 {
		t.Fatalf("with the server down: want 503, got %d", code)
	}
	ns.start(t)
	testutil.Eventually(t, 30*time.Second, "a 200 after the server is back", func() bool {
		code, _ := post(t, base+"/v1/events/ext", "application/json", `{"n":"after"}`)
		if code == 200 {
			accepted++
			return true
		}
		return false
	})
	archive := filepath.Join(dir, "archive")
	testutil.Eventually(t, 60*time.Second, fmt.Sprintf("%d events archived", accepted), func() bool {
		n := 0
		for _, d := range testutil.ArchiveDocs(t, archive) {
			if d["n"] != "during outage" {
				n++
			}
		}
		return n >= accepted
	})
}

// TestExternalNATSStoresCarryMessageIDs: on a NATS server every intake message
// carries a message ID, distinct per Store, so that a publish the client resends is
// dropped by the stream's duplicate detection; a resend of one is dropped.
func TestExternalNATSStoresCarryMessageIDs(t *testing.T) {
	dir := t.TempDir()
	ns, cfg := externalConfig(t, dir, nil)
	_, base := start(t, cfg)
	const n = 5
	for i := range n {
		if code, out := post(t, base+"/v1/events/ext", "application/json", fmt.Sprintf(`{"n":%d}`, i)); code != 200 {
			t.Fatalf("%d %v", code, out)
		}
	}
	nc, err := nats.Connect(ns.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := js.Stream(ctx, stream.IntakeStream)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	var first *jetstream.RawStreamMsg
	for seq := uint64(1); seq <= n; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("intake message %d: %v", seq, err)
		}
		id := m.Header.Get(nats.MsgIdHdr)
		if id == "" || ids[id] {
			t.Fatalf("intake message %d has message ID %q; want one, distinct from the others %v", seq, id, ids)
		}
		ids[id] = true
		if first == nil {
			first = m
		}
	}
	// The same message again, as the client resends it: dropped.
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: first.Subject, Header: first.Header, Data: first.Data})
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Duplicate {
		t.Fatalf("a resent intake message was stored again at %d", ack.Sequence)
	}
}
