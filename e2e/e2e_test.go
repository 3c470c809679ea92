// Package e2e runs the vigil binary as a separate process, the way operators do, to
// test what only a real process can show: crashes (kill -9), signals and exit codes.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// vigilBinary builds cmd/vigil once per test run.
func vigilBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vigil")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/vigil-sec/vigil/cmd/vigil")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one running vigil process.
type proc struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	done   chan struct{}
	status error
}

// startVigil starts `vigil run` with args and waits until admin /readyz answers 200;
// the process is killed when t ends, if it still runs.
func startVigil(t testing.TB, adminAddr string, args ...string) *proc {
	t.Helper()
	p := launchVigil(t, adminAddr, args...)
	// A test that fails before it stops the process does not leave it running.
	t.Cleanup(p.kill)
	return p
}

// launchVigil is startVigil for a process whose end its caller owns (a cluster
// node restarted in a subtest outlives the subtest).
func launchVigil(t testing.TB, adminAddr string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(vigilBinary(t), append([]string{"run"}, args...)...)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: &out.buf, done: make(chan struct{})}
	go func() { p.status = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("vigil exited during start-up: %v\n%s", p.status, out.String())
		default:
		}
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("vigil not ready within 30s\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone; on an ended process it
// does nothing.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate sends SIGTERM and returns the exit error after the process ends.
func (p *proc) terminate(t testing.TB, within time.Duration) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.status
	case <-time.After(within):
		p.kill()
		t.Fatalf("vigil did not exit within %s of SIGTERM", within)
		return nil
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func writeConfig(t testing.TB, dir, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(strings.TrimLeft(yaml, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// senders are HTTP clients that POST NDJSON batches of events, each with a unique
// "tid", until stopped, and remember every event a 200 acknowledged.
type senders struct {
	mu       sync.Mutex
	acked    map[string]bool
	stop     chan struct{}
	wg       sync.WaitGroup
	attempts atomic.Int64
	failures atomic.Int64
}

// startSenders starts clients posting perReq events per request to url, pausing
// pause after each acknowledged request.
func startSenders(t *testing.T, url string, clients, perReq int, pause time.Duration, message string) *senders {
	t.Helper()
	s := &senders{acked: map[string]bool{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	for c := range clients {
		s.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-s.stop:
					return
				default:
				}
				var body bytes.Buffer
				ids := make([]string, 0, perReq)
				for i := range perReq {
					id := fmt.Sprintf("c%d-r%d-e%d", c, n, i)
					ids = append(ids, id)
					fmt.Fprintf(&body, "{\"tid\":%q,\"message\":%q}\n", id, message)
				}
				s.attempts.Add(1)
				resp, err := client.Post(url, "application/x-ndjson", &body)
				if err != nil {
					s.failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				var out map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					s.failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if out["accepted"] != float64(perReq) {
					t.Errorf("200 with accepted=%v, want %d", out["accepted"], perReq)
				}
				s.mu.Lock()
				for _, id := range ids {
					s.acked[id] = true
				}
				s.mu.Unlock()
				time.Sleep(pause)
			}
		})
	}
	return s
}

// Stop stops the clients and returns the acknowledged events' tids.
func (s *senders) Stop() map[string]bool {
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}
