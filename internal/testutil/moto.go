package testutil

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Moto is a moto_server process: AWS's S3, SQS and SNS APIs on one endpoint, with
// real S3 event notifications to the queues a bucket's notification configuration
// names. scripts/test.sh installs it from PyPI (moto[server]).
type Moto struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// MotoAccount is the account moto runs as: queue URLs and ARNs name it.
const MotoAccount = "123456789012"

// StartMoto starts moto_server on a free loopback port and stops it when the test
// ends. A machine without moto_server fails the test: scripts/test.sh installs it.
func StartMoto(t testing.TB) *Moto {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server not found: install it with python3 -m pip install \"moto[server]\" (scripts/test.sh does): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", port)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	// Its own process group, so that Stop reaches the server and not only a wrapper
	// (pyenv's shim is a shell script).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &Moto{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	t.Cleanup(m.Stop)
	Eventually(t, 60*time.Second, "moto_server answering", func() bool {
		select {
		case <-m.done:
			t.Fatalf("moto_server exited before answering")
		default:
		}
		resp, err := http.Get(m.Endpoint() + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return m
}

// Endpoint is the base URL of every API.
func (m *Moto) Endpoint() string { return "http://" + m.addr }

// Stop ends the server's process group; it is idempotent.
func (m *Moto) Stop() {
	if m.cmd == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
	m.cmd = nil
}

// NewHTTPClient is an HTTP client for a test's AWS clients whose idle connections
// are closed when the test ends, so that leak checks see no reader goroutines.
func NewHTTPClient(t testing.TB) *http.Client {
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}
