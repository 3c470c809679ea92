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

// Moto is a moto_server process (the AWS API emulator from PyPI, installed by
// scripts/test.sh) on a random loopback port. Its state lives in memory and ends
// with the process. Credentials and account are moto's defaults: any key works and
// the account is 000000000000.
type Moto struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMoto starts moto_server for the test and stops it when the test ends. A
// machine without moto_server fails the test: scripts/test.sh installs it.
func StartMoto(t testing.TB) *Moto {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server not found: install it with python3 -m pip install \"moto[server]\" (scripts/test.sh does)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	m := &Moto{addr: addr, done: make(chan struct{})}
	m.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", port)
	if testing.Verbose() {
		m.cmd.Stdout, m.cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(m.Stop)
	Eventually(t, 60*time.Second, "moto_server answering", func() bool {
		resp, err := http.Get(m.Endpoint() + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return m
}

// Endpoint is moto's base URL, for every service.
func (m *Moto) Endpoint() string { return "http://" + m.addr }

// Stop ends the process; it is idempotent.
func (m *Moto) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}
