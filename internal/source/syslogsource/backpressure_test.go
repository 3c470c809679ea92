package syslogsource_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestBackpressure fills a tiny intake stream on an ingest-only node: the TCP sender
// must block instead of the source dropping anything. Then a processing node attaches
// to the same stream (over the ingest node's NATS port), drains it, the source
// resumes reading, and every message the sender fully wrote is archived exactly once.
func TestBackpressure(t *testing.T) {
	natsAddr := testutil.FreeAddr(t)
	tiny := func(c *config.Config, s *syslogsource.Config) {
		c.Buffer.Intake.MaxBytes = 1 << 20
		c.Buffer.Intake.MaxAge = time.Hour
		s.UDP = ""
		// Batches well under the stream's size, so that it fills and drains smoothly.
		s.BatchMaxRecords = 100
	}
	ingestCfg := testConfig(t, t.TempDir(), func(c *config.Config, s *syslogsource.Config) {
		tiny(c, s)
		c.Role = config.RoleIngest
		c.Buffer.Listen = natsAddr
	})
	p, src := start(t, ingestCfg)

	c, err := net.Dial("tcp", src.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A small send buffer makes the sender feel the push back sooner.
	_ = c.(*net.TCPConn).SetWriteBuffer(64 << 10)
	pad := make([]byte, 1000)
	written := 0
	var rest []byte // the part of a message not written when the sender blocked
	for i := 0; i < 50000 && rest == nil; i++ {
		// Random padding, so compression cannot make the stream room.
		_, _ = rand.Read(pad)
		msg := fmt.Sprintf("<13>1 - host app - - - bp %d %s\n", i, hex.EncodeToString(pad))
		if i%2 == 1 {
			msg = fmt.Sprintf("%d %s", len(msg)-1, msg[:len(msg)-1])
		}
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Write([]byte(msg))
		switch {
		case err == nil:
			written++
		case isTimeout(err):
			rest = []byte(msg[n:])
		default:
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if rest == nil {
		t.Fatalf("the sender never blocked after %d messages", written)
	}
	if got := metric(t, p.Metrics(), "vigil_retries_total"); got == 0 {
		t.Error("the source never retried a store: the stream did not push back")
	}
	if got := metric(t, p.Metrics(), "vigil_discarded_total"); got != 0 {
		t.Errorf("the source discarded %v messages", got)
	}
	t.Logf("sender blocked after %d messages", written)

	// Processing on another node drains the stream; the blocked sender finishes.
	procDir := t.TempDir()
	procCfg := testConfig(t, procDir, func(c *config.Config, s *syslogsource.Config) {
		tiny(c, s)
		c.Role = config.RoleProcess
		c.Buffer.Type = "nats"
		c.Buffer.URLs = []string{"nats://" + natsAddr}
	})
	start(t, procCfg)
	_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(rest); err != nil {
		t.Fatalf("finishing the blocked message: %v", err)
	}
	written++
	c.Close()

	archive := filepath.Join(procDir, "archive")
	var docs []map[string]any
	testutil.Eventually(t, 120*time.Second, fmt.Sprintf("%d messages archived", written), func() bool {
		docs = testutil.ArchiveDocs(t, archive)
		return len(docs) >= written
	})
	seen := make([]int, written)
	for _, d := range docs {
		f := strings.Fields(fmt.Sprint(d["message"]))
		n, err := strconv.Atoi(f[1])
		if len(f) != 3 || f[0] != "bp" || err != nil || n >= written || len(f[2]) != 2000 {
			t.Fatalf("unexpected document: %.100v", d)
		}
		seen[n]++
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("message %d archived %d times", i, n)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}
