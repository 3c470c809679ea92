package kinesissource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/kinesissource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// nodeEnv carries a child node's settings (childNode as JSON).
const nodeEnv = "VIGIL_KINESIS_TEST_NODE"

type childNode struct {
	Dir, NATS, Endpoint, Stream string
	FanOut                      bool
}

// runChildNode runs an ingest-only node until the process is killed.
func runChildNode() {
	var c childNode
	if err := json.Unmarshal([]byte(os.Getenv(nodeEnv)), &c); err != nil {
		panic(err)
	}
	src := kinesissource.NewConfig()
	src.Stream, src.Endpoint = c.Stream, c.Endpoint
	src.AccessKeyID, src.SecretAccessKey = "test", "test"
	src.PollInterval, src.ShardSyncInterval, src.LeaseTTL = 50*time.Millisecond, 200*time.Millisecond, 3*time.Second
	src.EnhancedFanOut.Enabled = c.FanOut
	cfg := nodeConfig(c.Dir, c.NATS, src)
	cfg.Role = config.RoleIngest
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), Version: "test", Registry: components.Builtin()})
	if err != nil {
		panic(err)
	}
	if err := p.Start(context.Background()); err != nil {
		panic(err)
	}
	select {}
}

// startNATS starts `go tool nats-server` (pinned in go.mod) on a loopback port.
func startNATS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listen: %s\njetstream { store_dir: %q }\n", addr, filepath.Join(dir, "js")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "nats-server", "-c", conf)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	testutil.Eventually(t, 120*time.Second, "nats-server listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return "nats://" + addr
}

// leaseOwners returns the owner of each live shard lease in the source's bucket.
func leaseOwners(t *testing.T, kv jetstream.KeyValue) map[string]string {
	t.Helper()
	out := map[string]string{}
	lister, err := kv.ListKeysFiltered(context.Background(), "lease.>")
	if err != nil {
		return out
	}
	for key := range lister.Keys() {
		e, err := kv.Get(context.Background(), key)
		if err != nil {
			continue
		}
		var l struct {
			Owner   string `json:"owner"`
			Expires int64  `json:"expires"`
		}
		if json.Unmarshal(e.Value(), &l) == nil && l.Expires > time.Now().UnixMilli() {
			out[key] = l.Owner
		}
	}
	return out
}

// TestTwoNodes: two nodes share a 4-shard stream through one NATS server, split the
// shards between them, and when one is killed (no clean stop, its leases left to
// expire) the other takes its shards over from their checkpoints: every record
// arrives exactly once.
func TestTwoNodes(t *testing.T) { testTwoNodes(t, false) }

// TestTwoNodesFanOut is TestTwoNodes with enhanced fan-out: the nodes share one
// consumer, each subscribed to the shards it holds.
func TestTwoNodesFanOut(t *testing.T) { testTwoNodes(t, true) }

func testTwoNodes(t *testing.T, fanOut bool) {
	if testing.Short() {
		t.Skip("starts nats-server and a second node")
	}
	natsURL := startNATS(t)
	var put func(from, to int)
	var cfg *kinesissource.Config
	if fanOut {
		srv := startEFO(t) // AWS_CA_BUNDLE, which the child inherits
		srv.CreateStream("central-logs", 4)
		put = func(from, to int) {
			for i := from; i < to; i++ {
				srv.Put("central-logs", fmt.Sprintf("key-%d", i%17), fmt.Appendf(nil, `{"tid":"r%d","message":"kinesis test"}`, i))
			}
		}
		cfg = efoConfig(srv, "central-logs")
	} else {
		m := testutil.StartMoto(t)
		s := newStream(t, m.Endpoint(), "central-logs", 4)
		put = func(from, to int) { s.put(t, from, to) }
		cfg = s.config(nil)
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	startNode(t, dirA, natsURL, cfg)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env, _ := json.Marshal(childNode{Dir: dirB, NATS: natsURL, Endpoint: cfg.Endpoint, Stream: cfg.Stream, FanOut: fanOut})
	child := exec.Command(exe, "-test.run=^$")
	child.Env = append(os.Environ(), nodeEnv+"="+string(env))
	if testing.Verbose() {
		child.Stdout, child.Stderr = os.Stderr, os.Stderr
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childDone := make(chan struct{})
	go func() { _ = child.Wait(); close(childDone) }()
	t.Cleanup(func() { _ = child.Process.Kill(); <-childDone })

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var kv jetstream.KeyValue
	testutil.Eventually(t, 30*time.Second, "the lease bucket", func() bool {
		kv, err = js.KeyValue(context.Background(), kinesissource.Bucket("central"))
		return err == nil
	})
	testutil.Eventually(t, 60*time.Second, "the shards split 2 and 2 between the nodes", func() bool {
		per := map[string]int{}
		for _, o := range leaseOwners(t, kv) {
			per[o]++
		}
		if len(per) != 2 {
			return false
		}
		for _, n := range per {
			if n != 2 {
				return false
			}
		}
		return true
	})
	put(0, 300)
	testutil.Eventually(t, 60*time.Second, "records archived", func() bool { return len(archived(t, dirA)) >= 300 })

	// Kill the child: its leases stay until they expire; then node A owns all four.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-childDone
	put(300, 600)
	testutil.Eventually(t, 60*time.Second, "node A holding all four shards", func() bool {
		owners := map[string]bool{}
		all := leaseOwners(t, kv)
		for _, o := range all {
			owners[o] = true
		}
		return len(all) == 4 && len(owners) == 1
	})
	waitExactlyOnce(t, 600, dirA)
}
