package pipeline

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// clusterContender is a leasedSink on a connection of its own to a three-server
// NATS cluster, as a process node runs it.
type clusterContender struct {
	name string
	nc   *nats.Conn
	l    *leasedSink
	snk  *stubSink
}

// testLogWriter sends log lines to t.Log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startClusterContender(t *testing.T, c *testutil.NATSCluster, first int, name string, ttl time.Duration) *clusterContender {
	t.Helper()
	urls := c.URLs()
	urls = append(urls[first:], urls[:first]...)
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := openLeaseBucket(ctx, js, ttl, 3)
	if err != nil {
		t.Fatal(err)
	}
	cc := &clusterContender{name: name, nc: nc, snk: &stubSink{}}
	cc.l = &leasedSink{name: "archive", kv: kv, nc: nc, ttl: ttl, node: name, holder: name + " " + newRunID(),
		log: slog.New(slog.NewTextHandler(testLogWriter{t}, nil)).With("node", name),
		build: func(context.Context) (*sinkRunner, error) {
			cc.snk.running.Add(1)
			return &sinkRunner{sink: cc.snk, started: true}, nil
		}}
	if err := cc.l.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return cc
}

// crash is a kill -9 as the cluster sees it: the connection goes without a word,
// nothing is released.
func (cc *clusterContender) crash() {
	cc.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cc.l.stop(ctx)
}

// On a three-server NATS cluster, a standby takes a sink over after its holder
// dies, also when the lease moved between the nodes before, while the server the
// holder was connected to was down (as in the cluster drills). Each round: kill -9
// of the holder's server (the lease may move), its restart, then the holder's
// crash (its connection gone, nothing released); the other must take over within
// three TTLs.
func TestSinkLeaseFailOverOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three nats-server processes")
	}
	const ttl = 4 * time.Second
	c := testutil.StartNATSCluster(t, filepath.Join(t.TempDir(), "nats"), 3)
	const rounds = 3
	a := startClusterContender(t, c, 0, "a", ttl)
	b := startClusterContender(t, c, 1, "b", ttl)
	defer func() { a.crash(); b.crash() }()
	holder := func() *clusterContender {
		for _, cc := range []*clusterContender{a, b} {
			if cc.l.holding() != nil {
				return cc
			}
		}
		return nil
	}
	for round := range rounds {
		waitFor(t, 3*ttl, "one contender holds the lease", func() bool { return holder() != nil })
		h := holder()
		// Kill the server the holder is connected to: its renewals fail until it
		// reconnects, and the lease may move meanwhile.
		srv := c.Servers[0]
		for _, s := range c.Servers {
			if h.nc.ConnectedUrl() == s.URL() {
				srv = s
			}
		}
		t.Logf("round %d: %s holds; kill -9 nats-server %s", round, h.name, srv.Name)
		srv.Kill()
		time.Sleep(ttl)
		srv.Start(t)
		srv.WaitHealthy(t, 60*time.Second)
		waitFor(t, 3*ttl, "one contender holds the lease", func() bool { return holder() != nil })
		h = holder()
		other := a
		if h == a {
			other = b
		}
		t.Logf("round %d: %s holds after the restart; crash it", round, h.name)
		h.crash()
		took := waitFor(t, 3*ttl, other.name+" takes the lease over", func() bool { return other.l.holding() != nil })
		t.Logf("round %d: %s took over %s after the crash", round, other.name, took.Round(100*time.Millisecond))
		// The crashed one comes back as a new run.
		if h == a {
			a = startClusterContender(t, c, 0, "a", ttl)
		} else {
			b = startClusterContender(t, c, 1, "b", ttl)
		}
	}
}
