package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Kinesalite is a kinesalite process (npm's Kinesis emulator, in memory): unlike
// moto it closes a split or merged parent shard, so resharding can be tested.
// scripts/test.sh installs it into .cache/kinesalite; KINESALITE_DIR overrides
// where (a directory whose node_modules holds kinesalite).
type Kinesalite struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartKinesalite starts kinesalite on a free loopback port and stops it when the
// test ends. A machine without node or kinesalite fails the test.
func StartKinesalite(t testing.TB) *Kinesalite {
	t.Helper()
	dir := os.Getenv("KINESALITE_DIR")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", ".cache", "kinesalite")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kinesalite")); err != nil {
		t.Fatalf("kinesalite not found in %s: install it with npm install --prefix %s kinesalite@3.3.3 (scripts/test.sh does)", dir, dir)
	}
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	script := fmt.Sprintf(`require("kinesalite")({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100}).listen(%s, "127.0.0.1")`, port)
	cmd := exec.Command("node", "-e", script)
	cmd.Dir = dir
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k := &Kinesalite{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(k.done) }()
	t.Cleanup(k.Stop)
	Eventually(t, 30*time.Second, "kinesalite answering", func() bool {
		select {
		case <-k.done:
			t.Fatalf("kinesalite exited before answering")
		default:
		}
		resp, err := http.Get(k.Endpoint())
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return k
}

// Endpoint is the API's base URL.
func (k *Kinesalite) Endpoint() string { return "http://" + k.addr }

// Stop ends the process group; it is idempotent.
func (k *Kinesalite) Stop() {
	if k.cmd == nil {
		return
	}
	_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-k.done
	}
	k.cmd = nil
}
