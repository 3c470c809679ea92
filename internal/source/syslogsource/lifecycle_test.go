package syslogsource_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestStopStoresFramed stops the pipeline while a connection is open and its
// messages wait in a batch (a long batch_max_wait): Stop must store them, and a
// restart on the same data directory archives them.
func TestStopStoresFramed(t *testing.T) {
	dir := t.TempDir()
	slow := func(_ *config.Config, s *syslogsource.Config) { s.BatchMaxWait = 10 * time.Second }
	p, src := start(t, testConfig(t, dir, slow))
	c, err := net.Dial("tcp", src.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 10 {
		fmt.Fprintf(c, "<13>1 - - - - - - held %d\n", i)
	}
	fmt.Fprintf(c, "<13>1 - - - - - - partial, no end")
	testutil.Eventually(t, 10*time.Second, "10 messages framed", func() bool {
		return metric(t, p.Metrics(), "vigil_received_events_total") >= 10
	})
	if got := metric(t, p.Metrics(), "vigil_sent_events_total"); got != 0 {
		t.Fatalf("stored %v messages before Stop; the test needs them held", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, p.Metrics(), "vigil_discarded_total"); got != 1 {
		t.Errorf("want the partial message counted as discarded, got %v", got)
	}
	// The source closed the connection.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection after Stop: want EOF, got %v", err)
	}
	start(t, testConfig(t, dir, nil))
	docs := waitDocs(t, filepath.Join(dir, "archive"), 10)
	for i := range 10 {
		if docs[fmt.Sprintf("held %d", i)] == nil {
			t.Errorf("held %d not archived", i)
		}
	}
}

// TestMaxConnections: past max_connections a new connection is closed at once and
// counted; the open ones keep working.
func TestMaxConnections(t *testing.T) {
	dir := t.TempDir()
	p, src := start(t, testConfig(t, dir, func(_ *config.Config, s *syslogsource.Config) { s.MaxConnections = 2 }))
	var conns []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp", src.TCPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "<13>1 - - - - - - conn %d\n", i)
		conns = append(conns, c)
	}
	testutil.Eventually(t, 10*time.Second, "2 open connections", func() bool {
		return metric(t, p.Metrics(), "vigil_open_connections") == 2
	})
	extra, err := net.Dial("tcp", src.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection over max_connections was not closed")
	}
	if got := metric(t, p.Metrics(), "vigil_errors_total"); got != 1 {
		t.Errorf("errors: want 1 (too_many_connections), got %v", got)
	}
	fmt.Fprintf(conns[0], "<13>1 - - - - - - conn 0 again\n")
	for _, c := range conns {
		c.Close()
	}
	waitDocs(t, filepath.Join(dir, "archive"), 3)
	testutil.Eventually(t, 10*time.Second, "connections closed", func() bool {
		return metric(t, p.Metrics(), "vigil_open_connections") == 0
	})
}

// TestUDPDropsCounted floods UDP into a tiny intake stream on an ingest-only node:
// UDP cannot push back, so what the stream refuses is counted as discarded
// (udp_stream_unavailable), and received = stored + discarded.
func TestUDPDropsCounted(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), func(c *config.Config, s *syslogsource.Config) {
		c.Role = config.RoleIngest
		c.Buffer.Intake.MaxBytes = 1 << 20
		s.TCP = ""
		s.BatchMaxRecords = 50
	})
	p, src := start(t, cfg)
	u, err := net.Dial("udp", src.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	pad := make([]byte, 700)
	for i := 0; i < 20000 && metric(t, p.Metrics(), "vigil_discarded_total") == 0; i++ {
		_, _ = rand.Read(pad)
		fmt.Fprintf(u, "<13>1 - - - - - - udp %d %s", i, hex.EncodeToString(pad))
	}
	testutil.Eventually(t, 20*time.Second, "UDP drops counted", func() bool {
		return metric(t, p.Metrics(), "vigil_discarded_total") > 0
	})
	// Every datagram taken is either stored or counted.
	testutil.Eventually(t, 20*time.Second, "received = stored + discarded", func() bool {
		return metric(t, p.Metrics(), "vigil_received_events_total") ==
			metric(t, p.Metrics(), "vigil_sent_events_total")+metric(t, p.Metrics(), "vigil_discarded_total")
	})
}
