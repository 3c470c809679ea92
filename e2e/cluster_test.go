package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// Timings of the cluster test: short, so that fail-over fits in the drills.
const (
	clusterAckWait  = 5 * time.Second
	clusterLeaseTTL = 4 * time.Second
)

// clusterNode is one Vigil process of a test cluster.
type clusterNode struct {
	name, role          string
	admin, http, syslog string
	cfg                 string
	p                   *proc
}

// vigilCluster is three nats-server processes as a JetStream cluster, and Vigil
// nodes by role on it, every one a separate process, all on loopback. The process
// nodes share one archive directory (as they would an NFS or EFS mount).
type vigilCluster struct {
	nats    *testutil.NATSCluster
	dir     string
	archive string
	nodes   []*clusterNode
}

// startVigilCluster starts the NATS cluster and the given Vigil nodes (by role,
// named <role>-<n>).
func startVigilCluster(t *testing.T, ingest, process int) *vigilCluster {
	t.Helper()
	return startVigilClusterTB(t, ingest, process)
}

func startVigilClusterTB(t testing.TB, ingest, process int) *vigilCluster {
	t.Helper()
	dir := t.TempDir()
	c := &vigilCluster{nats: testutil.StartNATSCluster(t, filepath.Join(dir, "nats"), 3), dir: dir,
		archive: filepath.Join(dir, "archive")}
	add := func(role string, n int) {
		for i := range n {
			nd := &clusterNode{name: fmt.Sprintf("%s-%d", role, i+1), role: role,
				admin: testutil.FreeAddr(t), http: testutil.FreeAddr(t), syslog: testutil.FreeAddr(t)}
			ndir := filepath.Join(dir, nd.name)
			if err := os.MkdirAll(ndir, 0o750); err != nil {
				t.Fatal(err)
			}
			nd.cfg = writeConfig(t, ndir, fmt.Sprintf(`
data_dir: %s
node_name: %s
role: %s
admin: {address: %s}
buffer:
  type: nats
  urls: [%s]
  replicas: 3
  ack_wait: %s
  lease_ttl: %s
  publish_timeout: 3s
  intake: {max_bytes: 512MiB}
  events: {max_bytes: 512MiB}
  dlq: {max_bytes: 64MiB}
sources:
  apps:
    type: http
    address: %s
    format: ndjson
    dataset: cluster
  syslog:
    type: syslog
    tcp: %s
sinks:
  archive:
    type: file_archive
    path: %s
    max_age: 500ms
    inputs: ["*"]
`, filepath.Join(ndir, "data"), nd.name, role, nd.admin, strings.Join(c.nats.URLs(), ", "), clusterAckWait, clusterLeaseTTL,
				nd.http, nd.syslog, c.archive))
			c.nodes = append(c.nodes, nd)
		}
	}
	add("ingest", ingest)
	add("process", process)
	for _, nd := range c.nodes {
		nd.start(t)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.p == nil {
				continue
			}
			select {
			case <-nd.p.done:
				t.Errorf("%s exited: %v", nd.name, nd.p.status)
			default:
			}
			nd.p.kill()
			if t.Failed() {
				out := nd.p.out.String()
				if len(out) > 6000 {
					out = out[len(out)-6000:]
				}
				t.Logf("%s output (tail):\n%s", nd.name, out)
			}
		}
	})
	return c
}

// start starts the node's process; the cluster's cleanup ends it.
func (nd *clusterNode) start(t testing.TB) {
	t.Helper()
	nd.p = launchVigil(t, nd.admin, "-c", nd.cfg)
}

func (nd *clusterNode) kill() {
	nd.p.kill()
	nd.p = nil
}

func (c *vigilCluster) byRole(role string) []*clusterNode {
	var out []*clusterNode
	for _, nd := range c.nodes {
		if nd.role == role {
			out = append(out, nd)
		}
	}
	return out
}

// stop stops the Vigil nodes (SIGTERM) and the NATS servers.
func (c *vigilCluster) stop(t testing.TB) {
	for _, nd := range c.nodes {
		if nd.p != nil {
			if err := nd.p.terminate(t, 40*time.Second); err != nil {
				out := nd.p.out.String()
				if len(out) > 3000 {
					out = out[len(out)-3000:]
				}
				t.Errorf("%s: graceful stop: %v; output (tail):\n%s", nd.name, err, out)
			}
			nd.p = nil
		}
	}
	for _, s := range c.nats.Servers {
		s.Stop()
	}
}

// status asks a node's admin API for the cluster status.
func (nd *clusterNode) status() (*pipeline.Status, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+nd.admin+"/v1/status", nil)
	req.Header.Set("X-Vigil-Request", "e2e")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status: HTTP %d", resp.StatusCode)
	}
	var st pipeline.Status
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}

// load is several HTTP senders spread over the ingest nodes and one syslog sender
// per ingest node, each bounded by a pause. An HTTP sender whose request fails
// (error or not 200) sends the same events to the next ingest node until one
// answers 200; a syslog sender whose write fails reconnects to the next node.
type load struct {
	mu       sync.Mutex
	acked    map[string]bool
	retried  map[string]bool // events of requests that failed before their 200: may be stored twice
	attempts atomic.Int64
	failures atomic.Int64

	// syslog: every message written, and the kills of the ingest nodes.
	sysSent []sysWritten
	kills   map[string][]time.Time

	stop chan struct{}
	wg   sync.WaitGroup
}

type sysWritten struct {
	id     string
	node   string
	at     time.Time
	connAt time.Time
	conn   string // the sender's connection: "<sender>-<number>"
}

func startLoad(t *testing.T, nodes []*clusterNode, httpClients, perReq int, pause time.Duration) *load {
	l := &load{acked: map[string]bool{}, retried: map[string]bool{}, kills: map[string][]time.Time{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	for c := range httpClients {
		l.wg.Go(func() {
			target := c % len(nodes)
			for n := 0; ; n++ {
				var body bytes.Buffer
				ids := make([]string, 0, perReq)
				for i := range perReq {
					id := fmt.Sprintf("c%d-r%d-e%d", c, n, i)
					ids = append(ids, id)
					fmt.Fprintf(&body, "{\"tid\":%q,\"message\":\"cluster drill\"}\n", id)
				}
				failed := false
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					l.attempts.Add(1)
					resp, err := client.Post("http://"+nodes[target].http+"/v1/events/apps", "application/x-ndjson", bytes.NewReader(body.Bytes()))
					ok := false
					if err == nil {
						_, _ = drainClose(resp)
						ok = resp.StatusCode == 200
					}
					if ok {
						break
					}
					l.failures.Add(1)
					if !failed {
						// Marked before the retry is sent, not after it succeeds: a check
						// that runs meanwhile may already find both copies archived.
						l.mu.Lock()
						for _, id := range ids {
							l.retried[id] = true
						}
						l.mu.Unlock()
					}
					failed = true
					target = (target + 1) % len(nodes)
					time.Sleep(50 * time.Millisecond)
				}
				l.mu.Lock()
				for _, id := range ids {
					l.acked[id] = true
				}
				l.mu.Unlock()
				time.Sleep(pause)
			}
		})
	}
	for i := range nodes {
		l.wg.Go(func() {
			target := i
			var conn net.Conn
			var connAt time.Time
			conns := 0
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					if conn != nil {
						conn.Close()
					}
					return
				default:
				}
				if conn == nil {
					c, err := net.DialTimeout("tcp", nodes[target].syslog, time.Second)
					if err != nil {
						target = (target + 1) % len(nodes)
						time.Sleep(50 * time.Millisecond)
						continue
					}
					conn, connAt = c, time.Now()
					conns++
				}
				id := fmt.Sprintf("sys%d-%d", i, n)
				msg := fmt.Sprintf("<134>1 2026-12-07T10:00:00.000Z host drill - - - tid=%s\n", id)
				_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if _, err := conn.Write([]byte(msg)); err != nil {
					conn.Close()
					conn = nil
					target = (target + 1) % len(nodes)
					continue
				}
				l.mu.Lock()
				l.sysSent = append(l.sysSent, sysWritten{id: id, node: nodes[target].name, at: time.Now(), connAt: connAt, conn: fmt.Sprintf("%d-%d", i, conns)})
				l.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	return l
}

func drainClose(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	var b [512]byte
	var n int64
	for {
		k, err := resp.Body.Read(b[:])
		n += int64(k)
		if err != nil {
			return n, nil
		}
	}
}

// killed records a kill -9 of an ingest node, for the syslog accounting.
func (l *load) killed(node string) {
	l.mu.Lock()
	l.kills[node] = append(l.kills[node], time.Now())
	l.mu.Unlock()
}

// owed returns what the pipeline owes now: HTTP events a 200 acknowledged, and
// syslog messages on connections no kill of their node cut. retried are the events
// whose request failed before it was acknowledged. tails are the messages, in
// order, of each connection a kill -9 of its node cut: syslog has no
// acknowledgement, and the kill may lose what the node had read and not stored and
// what sat in the socket buffers — the connection's tail. A node stores a
// connection's batches one after another, so every message before the last one
// archived is owed (docs/durability.md).
func (l *load) owed() (owed, retried map[string]bool, tails [][]string, sysSent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	owed, retried = map[string]bool{}, map[string]bool{}
	for id := range l.acked {
		owed[id] = true
	}
	for id := range l.retried {
		retried[id] = true
	}
	tailOf := map[string]int{} // connection → index in tails
	for _, w := range l.sysSent {
		cut := false
		for _, k := range l.kills[w.node] {
			if !k.Before(w.connAt) {
				cut = true
				break
			}
		}
		if !cut {
			owed[w.id] = true
			continue
		}
		i, ok := tailOf[w.conn]
		if !ok {
			i = len(tails)
			tailOf[w.conn] = i
			tails = append(tails, nil)
		}
		tails[i] = append(tails[i], w.id)
	}
	return owed, retried, tails, len(l.sysSent)
}

// owedOfTails returns, of each cut connection's messages (in write order), those up
// to its last archived one.
func owedOfTails(tails [][]string, archived func(id string) bool) []string {
	var owed []string
	for _, ids := range tails {
		last := -1
		for i, id := range ids {
			if archived(id) {
				last = i
			}
		}
		owed = append(owed, ids[:last+1]...)
	}
	return owed
}

func (l *load) Stop() {
	close(l.stop)
	l.wg.Wait()
}

// archiveIndex reads finished archive files once each (they never change) and
// counts the documents by tid and by event.id.
type archiveIndex struct {
	dir   string
	seen  map[string]bool
	byTID map[string]int
	byID  map[string]int
	docs  int
	// copies are, for each tid archived more than once, its copies; first holds
	// every tid's first copy until a second one comes.
	copies map[string][]archivedCopy
	first  map[string]archivedCopy
	// httpIDs are the event.id of the first HTTP events read.
	httpIDs []string
}

// archivedCopy is one archived document of a tid: its event.id, its event.ingested
// (the time its Store call received it: one per HTTP request) and its file.
type archivedCopy struct {
	id, ingested, file string
}

func newArchiveIndex(dir string) *archiveIndex {
	return &archiveIndex{dir: dir, seen: map[string]bool{}, byTID: map[string]int{}, byID: map[string]int{},
		copies: map[string][]archivedCopy{}, first: map[string]archivedCopy{}}
}

func (a *archiveIndex) refresh(t testing.TB) {
	t.Helper()
	err := filepath.WalkDir(a.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() && (d.Name() == ".tmp" || d.Name() == ".journal") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".ndjson.gz") || a.seen[path] {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var doc struct {
				TID     string `json:"tid"`
				Message string `json:"message"`
				Event   struct {
					ID       string `json:"id"`
					Ingested string `json:"ingested"`
				} `json:"event"`
			}
			if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
				t.Fatalf("%s: bad document %q: %v", path, sc.Text(), err)
			}
			tid := doc.TID
			if tid == "" {
				tid = strings.TrimPrefix(doc.Message, "tid=")
			}
			a.byTID[tid]++
			if !strings.HasPrefix(tid, "sys") && len(a.httpIDs) < 200 {
				a.httpIDs = append(a.httpIDs, doc.Event.ID)
			}
			where := archivedCopy{id: doc.Event.ID, ingested: doc.Event.Ingested, file: filepath.Base(path)}
			if a.byTID[tid] == 1 {
				a.first[tid] = where
			} else {
				if len(a.copies[tid]) == 0 {
					a.copies[tid] = append(a.copies[tid], a.first[tid])
				}
				a.copies[tid] = append(a.copies[tid], where)
			}
			a.byID[doc.Event.ID]++
			a.docs++
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		a.seen[path] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// verify waits until every event owed now is archived, then checks that no
// event.id is archived twice and that an event is archived more than once only when
// its request was retried after a failure (a retry is stored again under new event
// IDs: docs/durability.md), and prints the counts.
func (c *vigilCluster) verify(t *testing.T, drill string, l *load, idx *archiveIndex, within time.Duration) {
	t.Helper()
	owed, retried, tails, sysSent := l.owed()
	if len(owed) == 0 {
		t.Fatalf("%s: nothing was acknowledged", drill)
	}
	start := time.Now()
	missing := len(owed)
	var tailOwed []string
	var some []string
	for {
		idx.refresh(t)
		missing, some = 0, some[:0]
		tailOwed = owedOfTails(tails, func(id string) bool { return idx.byTID[id] > 0 })
		for _, ids := range [][]string{slices.Collect(maps.Keys(owed)), tailOwed} {
			for _, id := range ids {
				if idx.byTID[id] == 0 {
					missing++
					if len(some) < 10 {
						some = append(some, id)
					}
				}
			}
		}
		if missing == 0 || time.Since(start) > within {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The load went on while the archive was read: a request that failed meanwhile
	// was marked retried before its retry was sent, so the set read now covers every
	// second copy the archive can hold (the set read at the start does not).
	_, retried, _, _ = l.owed()
	sysOwed := len(tailOwed)
	for id := range owed {
		if strings.HasPrefix(id, "sys") {
			sysOwed++
		}
	}
	tailed := 0
	for _, ids := range tails {
		tailed += len(ids)
	}
	dupIDs, copies, badCopies := 0, 0, 0
	for _, n := range idx.byID {
		if n > 1 {
			dupIDs += n - 1
		}
	}
	sysCopies := 0
	for tid, n := range idx.byTID {
		switch {
		case n <= 1:
		case strings.HasPrefix(tid, "sys"):
			// The syslog source retries a store that failed, and a store whose
			// acknowledgement was lost in a leader election may have taken: the
			// retry stores the batch again under new event IDs (docs/deployment.md).
			sysCopies += n - 1
		default:
			copies += n - 1
			if !retried[tid] {
				badCopies++
			}
		}
	}
	t.Logf("%s: %d events owed (%d HTTP acknowledged, %d of %d syslog messages: all but the unarchived tails of %d connections cut by a kill, %d lost there), %d missing after %s; "+
		"archive: %d documents, %d distinct event.id, %d duplicate event.id, %d second copies of %d retried HTTP events, %d second copies of syslog messages; requests %d, failed %d",
		drill, len(owed)+len(tailOwed), len(owed)+len(tailOwed)-sysOwed, sysOwed, sysSent, len(tails), tailed-len(tailOwed), missing, time.Since(start).Round(100*time.Millisecond),
		idx.docs, len(idx.byID), dupIDs, copies, len(retried), sysCopies, l.attempts.Load(), l.failures.Load())
	if missing > 0 {
		t.Fatalf("%s: %d acknowledged events not in the archive after %s, e.g. %v", drill, missing, within, some)
	}
	if dupIDs > 0 {
		t.Fatalf("%s: %d documents archived twice (same event.id)", drill, dupIDs)
	}
	if badCopies > 0 {
		c.judgeUnretriedCopies(t, drill, idx, retried)
	}
}

// drillPerRequest is how many events each HTTP request of the drills' load carries.
const drillPerRequest = 20

// judgeUnretriedCopies fails the test: events were archived more than once although
// their request was never retried. It logs where each copy is from first: its
// event.id's intake position and its event.ingested (one per Store call: copies
// ingested at different times were sent twice; at the same time, stored twice).
func (c *vigilCluster) judgeUnretriedCopies(t *testing.T, drill string, idx *archiveIndex, retried map[string]bool) {
	t.Helper()
	var tids []string
	for tid, n := range idx.byTID {
		if n > 1 && !retried[tid] && !strings.HasPrefix(tid, "sys") {
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	origins := c.intakeOrigins(t, drillPerRequest-1)
	for _, tid := range tids[:min(3, len(tids))] {
		for _, cp := range idx.copies[tid] {
			o, ok := origins[cp.id]
			if !ok {
				o = "no intake position under the stream's epoch"
			}
			t.Logf("%s: %s archived in %s, event.id %s from %s, ingested %s", drill, tid, cp.file, cp.id, o, cp.ingested)
		}
	}
	t.Fatalf("%s: %d events archived more than once although their request was never retried, e.g. %v", drill, len(tids), tids[:min(10, len(tids))])
}

// intakeOrigins returns, for every event ID derived from a position in the intake
// stream (records 0 to maxIndex of each message; an NDJSON line is one event), that
// position.
func (c *vigilCluster) intakeOrigins(t *testing.T, maxIndex int) map[string]string {
	t.Helper()
	epoch, lastSeq := c.intakeStream(t)
	origins := map[string]string{}
	for seq := uint64(1); seq <= lastSeq; seq++ {
		for i := 0; i <= maxIndex; i++ {
			origins[event.DeriveID(event.Origin{Epoch: epoch, Seq: seq, Index: uint32(i)}, 0)] = fmt.Sprintf("intake seq %d record %d", seq, i)
		}
	}
	return origins
}

// intakeStream returns the intake stream's epoch (its creation time, from which
// event IDs derive) and its last sequence, asked of the NATS cluster directly.
func (c *vigilCluster) intakeStream(t *testing.T) (epoch int64, lastSeq uint64) {
	t.Helper()
	nc, err := nats.Connect(strings.Join(c.nats.URLs(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream.IntakeStream)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	return info.Created.UnixNano(), info.State.LastSeq
}

// leaderOf returns the server that leads the named stream, as a node's status
// reports it.
func (c *vigilCluster) leaderOf(t *testing.T, nd *clusterNode, name string) string {
	t.Helper()
	var leader string
	testutil.Eventually(t, 30*time.Second, name+" has a leader", func() bool {
		st, err := nd.status()
		if err != nil {
			return false
		}
		for _, s := range st.Streams {
			if s.Name == name && s.Leader != "" {
				leader = s.Leader
				return true
			}
		}
		return false
	})
	return leader
}

// sinkHolder returns the node that runs the archive sink, as nd's status reports it.
func sinkHolder(t *testing.T, nd *clusterNode) string {
	st, err := nd.status()
	if err != nil {
		return ""
	}
	for _, cs := range st.Consumers {
		if cs.Sink == "archive" {
			return cs.Holder
		}
	}
	return ""
}

// TestClusterDrills runs Vigil as two ingest and two process nodes on a three-server
// NATS JetStream cluster (streams with 3 replicas, fsync always) under continuous
// load from three HTTP senders and two syslog senders, and goes through the
// failures a cluster sees, one after another on the same cluster: kill -9 of the
// intake stream's leader and its restart; kill -9 of an ingest node; kill -9 of the
// process node that runs the archive sink (the other takes it over), its restart,
// and kill -9 of the one that took over (the restarted one takes the sink back); a
// rolling restart of the three NATS servers; a partition of one server from the
// other two (routes cut by proxies; the Vigil nodes on it must move to the
// majority) and its healing. After each, every event acknowledged so far is in the
// archive, no event.id twice.
func TestClusterDrills(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster drills run nats-server and vigil as processes; skipped with -short")
	}
	c := startVigilCluster(t, 2, 2)
	ingest, process := c.byRole("ingest"), c.byRole("process")
	idx := newArchiveIndex(c.archive)
	l := startLoad(t, ingest, 3, drillPerRequest, 100*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			l.Stop()
		}
	}()
	time.Sleep(3 * time.Second)

	t.Run("kill the intake stream leader", func(t *testing.T) {
		leader := c.leaderOf(t, process[0], "VIGIL_RAW")
		srv := c.nats.Server(leader)
		t.Logf("kill -9 nats-server %s, leader of VIGIL_RAW", leader)
		srv.Kill()
		testutil.Eventually(t, 30*time.Second, "VIGIL_RAW has a new leader", func() bool {
			st, err := process[0].status()
			if err != nil {
				return false
			}
			for _, s := range st.Streams {
				if s.Name == "VIGIL_RAW" {
					return s.Leader != "" && s.Leader != leader
				}
			}
			return false
		})
		time.Sleep(3 * time.Second)
		srv.Start(t)
		srv.WaitHealthy(t, 60*time.Second)
		time.Sleep(2 * time.Second)
		c.verify(t, "leader kill", l, idx, 60*time.Second)
	})

	t.Run("kill an ingest node", func(t *testing.T) {
		nd := ingest[0]
		t.Logf("kill -9 %s", nd.name)
		l.killed(nd.name)
		nd.kill()
		time.Sleep(4 * time.Second)
		nd.start(t)
		time.Sleep(2 * time.Second)
		c.verify(t, "ingest kill", l, idx, 60*time.Second)
	})

	t.Run("kill the process node running the sink", func(t *testing.T) {
		var holder string
		testutil.Eventually(t, 30*time.Second, "a node runs the archive sink", func() bool {
			holder = sinkHolder(t, process[0])
			return holder != ""
		})
		var victim, survivor *clusterNode
		for _, nd := range process {
			if nd.name == holder {
				victim = nd
			} else {
				survivor = nd
			}
		}
		if victim == nil {
			t.Fatalf("the archive sink runs on %q, not a process node", holder)
		}
		t.Logf("kill -9 %s, which runs the archive sink", victim.name)
		killedAt := time.Now()
		victim.kill()
		testutil.Eventually(t, 3*clusterLeaseTTL, survivor.name+" takes the archive sink over", func() bool {
			return sinkHolder(t, survivor) == survivor.name
		})
		t.Logf("%s runs the archive sink %s after the kill", survivor.name, time.Since(killedAt).Round(100*time.Millisecond))
		time.Sleep(2 * time.Second)
		c.verify(t, "process kill", l, idx, 60*time.Second)
		victim.start(t)

		// And back: the node just restarted takes the sink over when the one that
		// took it dies in turn.
		time.Sleep(2 * time.Second)
		t.Logf("kill -9 %s, which runs the archive sink now", survivor.name)
		killedAt = time.Now()
		survivor.kill()
		testutil.Eventually(t, 3*clusterLeaseTTL, victim.name+" (restarted) takes the archive sink over", func() bool {
			return sinkHolder(t, victim) == victim.name
		})
		t.Logf("%s runs the archive sink %s after the kill", victim.name, time.Since(killedAt).Round(100*time.Millisecond))
		time.Sleep(2 * time.Second)
		c.verify(t, "second process kill", l, idx, 60*time.Second)
		survivor.start(t)
	})

	t.Run("rolling restart of the NATS servers", func(t *testing.T) {
		for _, srv := range c.nats.Servers {
			t.Logf("restart nats-server %s", srv.Name)
			srv.Stop()
			time.Sleep(2 * time.Second)
			srv.Start(t)
			srv.WaitHealthy(t, 60*time.Second)
		}
		time.Sleep(2 * time.Second)
		c.verify(t, "rolling restart", l, idx, 60*time.Second)
	})

	t.Run("partition a NATS server", func(t *testing.T) {
		// The server ingest-1 is connected to: its clients stay connected to it, and
		// cannot store until they move to a server of the majority.
		st, err := ingest[0].status()
		if err != nil {
			t.Fatal(err)
		}
		cut := st.Self.NATS
		if c.nats.Server(cut) == nil {
			t.Fatalf("ingest-1 is on server %q", cut)
		}
		before := l.failures.Load()
		t.Logf("partition nats-server %s, which ingest-1 is connected to, from the other two", cut)
		c.nats.Partition(cut)
		cutAt := time.Now()
		testutil.Eventually(t, 30*time.Second, "ingest-1 moves to a server of the majority", func() bool {
			st, err := ingest[0].status()
			return err == nil && st.Self.NATS != "" && st.Self.NATS != cut
		})
		t.Logf("ingest-1 moved to another server %s after the partition", time.Since(cutAt).Round(100*time.Millisecond))
		l.mu.Lock()
		ackedBefore := len(l.acked)
		l.mu.Unlock()
		testutil.Eventually(t, 30*time.Second, "events acknowledged during the partition", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return len(l.acked) >= ackedBefore+500
		})
		c.nats.Heal(cut)
		t.Logf("healed after %s; %d requests failed meanwhile (retried until one answered 200)",
			time.Since(cutAt).Round(100*time.Millisecond), l.failures.Load()-before)
		for _, srv := range c.nats.Servers {
			srv.WaitHealthy(t, 60*time.Second)
		}
		time.Sleep(2 * time.Second)
		c.verify(t, "partition", l, idx, 60*time.Second)
	})

	l.Stop()
	stopped = true
	c.verify(t, "end", l, idx, 60*time.Second)

	// Event IDs derive from the intake stream position (docs/durability.md), whichever
	// node processed the record and however often the stream leaders changed.
	origins := c.intakeOrigins(t, drillPerRequest-1)
	for _, id := range idx.httpIDs {
		if _, ok := origins[id]; !ok {
			t.Errorf("event.id %s derives from no position in the intake stream", id)
		}
	}
	if len(idx.httpIDs) == 0 {
		t.Error("no HTTP event archived")
	}

	// vigil status shows the cluster.
	out, err := exec.Command(vigilBinary(t), "status", "--admin", process[0].admin).CombinedOutput()
	if err != nil {
		t.Fatalf("vigil status: %v\n%s", err, out)
	}
	t.Logf("vigil status:\n%s", out)
	for _, want := range []string{"VIGIL_RAW", "VIGIL_EVENTS", "sink-archive", "processing"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("vigil status does not show %s", want)
		}
	}
	for _, nd := range c.nodes {
		if !bytes.Contains(out, []byte(nd.name)) {
			t.Errorf("vigil status does not show node %s", nd.name)
		}
	}
	st, err := process[0].status()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Streams {
		if s.Replicas != 3 || len(s.Peers) != 2 || s.Leader == "" {
			t.Errorf("stream %s: %d replicas, leader %q, %d followers; want 3, a leader and 2 followers", s.Name, s.Replicas, s.Leader, len(s.Peers))
		}
	}
	var names []string
	for _, n := range st.Nodes {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	if want := []string{"ingest-1", "ingest-2", "process-1", "process-2"}; !slices.Equal(names, want) {
		t.Errorf("registered nodes %v, want %v", names, want)
	}
	c.stop(t)
}
