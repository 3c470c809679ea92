package testutil

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// VictoriaLogs is a VictoriaLogs server — a real log store with an Elasticsearch
// _bulk-compatible endpoint, pinned in go.mod as a tool — run as a process on a data
// directory that survives its restarts.
type VictoriaLogs struct {
	bin  string
	dir  string
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// victoriaLogsBinary is the built binary of the pinned victoria-logs (see ToolBinary).
func victoriaLogsBinary(t testing.TB) string {
	t.Helper()
	return ToolBinary(t, "victoria-logs")
}

// StartVictoriaLogs starts VictoriaLogs on a free loopback port and stops it when
// the test ends.
func StartVictoriaLogs(t testing.TB) *VictoriaLogs {
	t.Helper()
	addr := FreeAddr(t)
	v := &VictoriaLogs{bin: victoriaLogsBinary(t), dir: t.TempDir(), Addr: addr}
	v.Start(t)
	t.Cleanup(v.Stop)
	return v
}

// Start (re)starts the server on its address and data directory and waits until it
// is healthy.
func (v *VictoriaLogs) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(v.bin, "-storageDataPath", filepath.Join(v.dir, "data"), "-httpListenAddr", v.Addr,
		"-loggerLevel", "ERROR", "-retentionPeriod", "100y")
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v.cmd = cmd
	v.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(v.done) }()
	Eventually(t, 60*time.Second, "VictoriaLogs healthy", func() bool {
		resp, err := http.Get("http://" + v.Addr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// Stop ends VictoriaLogs with SIGTERM: it flushes what it acknowledged (a SIGKILL
// would lose the rows it buffers in memory for about a second, which is
// VictoriaLogs' durability, not the sender's).
func (v *VictoriaLogs) Stop() {
	if v.cmd == nil {
		return
	}
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.done:
	case <-time.After(20 * time.Second):
		_ = v.cmd.Process.Kill()
		<-v.done
	}
	v.cmd = nil
}

// BulkURL is the URL an Elasticsearch sink posts <url>/_bulk to.
func (v *VictoriaLogs) BulkURL() string { return "http://" + v.Addr + "/insert/elasticsearch" }

// Rows returns every stored log row (all fields, flattened with dots).
func (v *VictoriaLogs) Rows(t testing.TB) []map[string]string {
	t.Helper()
	q := url.Values{"query": {"*"}}
	resp, err := http.Post("http://"+v.Addr+"/select/logsql/query", "application/x-www-form-urlencoded", strings.NewReader(q.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("query: %d %s", resp.StatusCode, body)
	}
	var rows []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("row %q: %v", sc.Text(), err)
		}
		rows = append(rows, row)
	}
	return rows
}

// CountByID counts stored rows per event.id.
func (v *VictoriaLogs) CountByID(t testing.TB) map[string]int {
	seen := map[string]int{}
	for _, r := range v.Rows(t) {
		seen[r["event.id"]]++
	}
	return seen
}
