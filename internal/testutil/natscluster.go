package testutil

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATSCluster is a JetStream cluster of nats-server processes (the version pinned
// in go.mod as a tool) on loopback: each server has its own server_name, store
// directory, client, cluster and monitoring ports, routes to the others, and
// fsyncs every write (sync_interval: always), as docs/deployment.md tells
// operators to run it. Routes pass through proxies, so that a test can partition a
// server from the others (Partition) without leaving loopback.
type NATSCluster struct {
	Servers []*NATSServer
	proxies map[[2]int]*Proxy // route from server i to server j
}

// Partition cuts every route between the named server and the others (its clients
// stay connected to it); Heal restores them.
func (c *NATSCluster) Partition(name string) { c.routes(name, (*Proxy).Cut) }

// Heal restores the routes Partition cut.
func (c *NATSCluster) Heal(name string) { c.routes(name, (*Proxy).Heal) }

func (c *NATSCluster) routes(name string, f func(*Proxy)) {
	for k, p := range c.proxies {
		if c.Servers[k[0]].Name == name || c.Servers[k[1]].Name == name {
			f(p)
		}
	}
}

// NATSServer is one server of a NATSCluster.
type NATSServer struct {
	Name    string
	Port    int // client port
	Monitor int // HTTP monitoring port (/healthz, /jsz)
	Conf    string
	Dir     string

	bin  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// NATSServerBinary is the built binary of the pinned nats-server (see ToolBinary).
func NATSServerBinary(t testing.TB) string {
	t.Helper()
	return ToolBinary(t, "nats-server")
}

// StartNATSCluster starts n servers under dir and waits until every one reports
// JetStream healthy. They are stopped when the test ends.
func StartNATSCluster(t testing.TB, dir string, n int) *NATSCluster {
	t.Helper()
	bin := NATSServerBinary(t)
	c := &NATSCluster{proxies: map[[2]int]*Proxy{}}
	routePorts := make([]int, n)
	for i := range n {
		routePorts[i] = FreePort(t)
	}
	// Every route goes through a proxy of its own (server i to server j), so that a
	// test can partition a server by cutting its proxies. Each server advertises a
	// closed port as its cluster address: a server learning of another by gossip
	// cannot open a direct route around the proxies.
	for i := range n {
		for j := range n {
			if i != j {
				c.proxies[[2]int{i, j}] = StartProxy(t, fmt.Sprintf("127.0.0.1:%d", routePorts[j]))
			}
		}
	}
	closed := FreePort(t)
	for i := range n {
		var routes []string
		for j := range n {
			if i != j {
				routes = append(routes, "nats-route://"+c.proxies[[2]int{i, j}].Addr())
			}
		}
		s := &NATSServer{Name: fmt.Sprintf("n%d", i+1), Port: FreePort(t), Monitor: FreePort(t), bin: bin,
			Dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1))}
		if err := os.MkdirAll(s.Dir, 0o750); err != nil {
			t.Fatal(err)
		}
		s.Conf = filepath.Join(s.Dir, "nats.conf")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 8MB
jetstream {
  store_dir: %q
  sync_interval: always
  max_file_store: 4GB
  max_memory_store: 64MB
}
cluster {
  name: vigil
  listen: 127.0.0.1:%d
  advertise: 127.0.0.1:%d
  routes: [%s]
}
`, s.Name, s.Port, s.Monitor, filepath.Join(s.Dir, "js"), routePorts[i], closed, strings.Join(routes, ", "))
		if err := os.WriteFile(s.Conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		c.Servers = append(c.Servers, s)
	}
	for _, s := range c.Servers {
		s.Start(t)
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			s.Stop()
		}
	})
	for _, s := range c.Servers {
		s.WaitHealthy(t, 60*time.Second)
	}
	return c
}

// URLs are the servers' client URLs.
func (c *NATSCluster) URLs() []string {
	var out []string
	for _, s := range c.Servers {
		out = append(out, s.URL())
	}
	return out
}

// Server returns the server with the given server_name, nil if none.
func (c *NATSCluster) Server(name string) *NATSServer {
	for _, s := range c.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// URL is the server's client URL.
func (s *NATSServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// Start starts the server process (again) with its config and store.
func (s *NATSServer) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		t.Fatalf("nats-server %s already running", s.Name)
	}
	cmd := exec.Command(s.bin, "-c", s.Conf)
	log, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	s.cmd, s.done = cmd, done
}

// Kill sends SIGKILL and waits until the process is gone.
func (s *NATSServer) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Stop shuts the server down gracefully (SIGTERM; SIGKILL after 30s).
func (s *NATSServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// Healthy reports whether the server's /healthz answers 200: it runs, JetStream is
// enabled, and its replicas of every stream and consumer are current.
func (s *NATSServer) Healthy() bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.Monitor))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitHealthy waits until Healthy or fails the test after timeout.
func (s *NATSServer) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !s.Healthy() {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			t.Fatalf("nats-server %s not healthy within %s; log tail:\n%s", s.Name, timeout, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
