package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestCrashNoAcknowledgedLoss runs vigil as a process, sends events from several
// concurrent HTTP clients and a Firehose delivery stream, kill -9s it at random moments six times (restarting each
// time), and then checks that every event that got a 200 is in the archive, and that
// no document is archived twice (counted by event.id).
func TestCrashNoAcknowledgedLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs vigil as a process; skipped with -short")
	}
	dir := t.TempDir()
	httpAddr, adminAddr, firehoseAddr, syslogAddr := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`
data_dir: %s
admin: {address: %s}
buffer:
  type: embedded
  ack_wait: 3s
sources:
  apps:
    type: http
    address: %s
    format: ndjson
    dataset: crash
  firehose:
    type: firehose
    address: %s
    access_keys: ["crash-test-key"]
    format: json
    dataset: crash
  syslog:
    type: syslog
    tcp: %s
sinks:
  archive:
    type: file_archive
    max_age: 300ms
    inputs: ["*"]
`, filepath.Join(dir, "data"), adminAddr, httpAddr, firehoseAddr, syslogAddr))

	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		attempts atomic.Int64
		failures atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for c := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var body bytes.Buffer
				ids := make([]string, 0, 25)
				for i := range 25 {
					id := fmt.Sprintf("c%d-r%d-e%d", c, n, i)
					ids = append(ids, id)
					fmt.Fprintf(&body, "{\"tid\":%q,\"message\":\"crash test event\"}\n", id)
				}
				attempts.Add(1)
				resp, err := client.Post("http://"+httpAddr+"/v1/events/apps", "application/x-ndjson", &body)
				if err != nil {
					failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				var out map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if out["accepted"] != 25.0 {
					t.Errorf("200 with accepted=%v", out["accepted"])
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
			}
		})
	}

	// One Firehose delivery stream, sending requests built as the HTTP endpoint
	// delivery specification shows; a record counts only when the answer is 200.
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			var recs []map[string]string
			ids := make([]string, 0, 20)
			for i := range 20 {
				id := fmt.Sprintf("fh-r%d-e%d", n, i)
				ids = append(ids, id)
				data := fmt.Sprintf(`{"tid":%q,"message":"firehose crash test"}`, id)
				recs = append(recs, map[string]string{"data": base64.StdEncoding.EncodeToString([]byte(data))})
			}
			reqID := fmt.Sprintf("req-%d", n)
			body, _ := json.Marshal(map[string]any{"requestId": reqID, "timestamp": time.Now().UnixMilli(), "records": recs})
			req, _ := http.NewRequest(http.MethodPost, "http://"+firehoseAddr+"/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Amz-Firehose-Request-Id", reqID)
			req.Header.Set("X-Amz-Firehose-Access-Key", "crash-test-key")
			req.Header.Set("X-Amz-Firehose-Protocol-Version", "1.0")
			attempts.Add(1)
			resp, err := client.Do(req)
			if err != nil {
				failures.Add(1)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			var out map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failures.Add(1)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if out["requestId"] != reqID {
				t.Errorf("firehose answer with requestId %v, want %s", out["requestId"], reqID)
			}
			mu.Lock()
			for _, id := range ids {
				acked[id] = true
			}
			mu.Unlock()
		}
	})

	// One syslog sender over TCP. Syslog has no acknowledgement: a kill loses what a
	// connection had read and not yet stored, what waited in the socket buffers, and
	// what the sender wrote into the dead connection before a write failed — the
	// connection's tail, nothing else. Vigil stores a connection's batches one after
	// another, so every message written before one that is archived is owed (a gap is
	// a loss of what was stored or read), and so is every message on the last
	// connection, which closes normally. docs/durability.md states this; the test
	// reports how long before a kill the lost tails began.
	type written struct {
		id   string
		at   time.Time
		conn int // the sender's connection number
	}
	var (
		syslogMu   sync.Mutex
		syslogSent []written
		killTimes  []time.Time
	)
	wg.Go(func() {
		var conn net.Conn
		conns := 0
		for n := 0; ; n++ {
			select {
			case <-stop:
				if conn != nil {
					conn.Close()
				}
				return
			default:
			}
			if conn == nil {
				c, err := net.DialTimeout("tcp", syslogAddr, time.Second)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				conn = c
				conns++
			}
			id := fmt.Sprintf("sys-%d", n)
			msg := fmt.Sprintf("<134>1 2026-11-25T10:00:00.000Z host crash - - - tid=%s\n", id)
			_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := conn.Write([]byte(msg)); err != nil {
				conn.Close()
				conn = nil
				continue
			}
			syslogMu.Lock()
			syslogSent = append(syslogSent, written{id, time.Now(), conns})
			syslogMu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	})

	p := startVigil(t, adminAddr, "-c", cfgPath)
	const kills = 6
	for k := range kills {
		// Kills well apart, so that most syslog messages are stored between them.
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		syslogMu.Lock()
		killTimes = append(killTimes, time.Now())
		syslogMu.Unlock()
		p.kill()
		t.Logf("kill -9 #%d after %d requests", k+1, attempts.Load())
		p = startVigil(t, adminAddr, "-c", cfgPath)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	want := len(acked)
	mu.Unlock()
	t.Logf("%d requests, %d failed (expected while killed), %d events acknowledged", attempts.Load(), failures.Load(), want)
	if want == 0 {
		t.Fatal("no event was acknowledged")
	}
	fh := 0
	for id := range acked {
		if strings.HasPrefix(id, "fh-") {
			fh++
		}
	}
	if fh == 0 {
		t.Fatal("no Firehose record was acknowledged")
	}
	t.Logf("syslog: %d messages written", len(syslogSent))

	archive := filepath.Join(dir, "data", "archive")
	var docs []map[string]any
	var found map[string]bool
	readArchive := func() {
		docs = testutil.ArchiveDocs(t, archive)
		found = map[string]bool{}
		for _, d := range docs {
			if tid, ok := d["tid"]; ok {
				found[fmt.Sprint(tid)] = true
			} else if msg, ok := d["message"].(string); ok && strings.HasPrefix(msg, "tid=") {
				found[strings.TrimPrefix(msg, "tid=")] = true
			}
		}
	}
	lastReport := time.Now()
	testutil.Eventually(t, 90*time.Second, "every acknowledged event in the archive", func() bool {
		readArchive()
		missing := 0
		var some []string
		for id := range acked {
			if !found[id] {
				missing++
				if len(some) < 10 {
					some = append(some, id)
				}
			}
		}
		if missing > 0 && time.Since(lastReport) > 15*time.Second {
			lastReport = time.Now()
			t.Logf("waiting: %d of %d acknowledged events not archived yet (%d documents), among them %q", missing, len(acked), len(docs), some)
		}
		return missing == 0
	})

	// Syslog: per connection, what is owed is everything up to its last archived
	// message; on the last connection, everything.
	// The last connection, if it was opened after the last kill (its first message
	// written after it), was closed normally.
	lastConn := -1
	if len(syslogSent) > 0 && len(killTimes) > 0 {
		last := syslogSent[len(syslogSent)-1].conn
		for _, w := range syslogSent {
			if w.conn == last {
				if w.at.After(killTimes[len(killTimes)-1]) {
					lastConn = last
				}
				break
			}
		}
	}
	// The messages of the other connections, each connection's in write order.
	var whole []string
	var tails [][]string
	tailOf := map[int]int{}
	writtenAt := map[string]time.Time{}
	for _, w := range syslogSent {
		writtenAt[w.id] = w.at
		if w.conn == lastConn {
			whole = append(whole, w.id)
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
	archived := func(id string) bool { return found[id] }
	var owed []string
	testutil.Eventually(t, 60*time.Second, "every syslog message before an archived one on its connection in the archive", func() bool {
		readArchive()
		owed = append(owedOfTails(tails, archived), whole...)
		var gaps []string
		for _, id := range owed {
			if !found[id] && len(gaps) < 10 {
				gaps = append(gaps, id)
			}
		}
		if len(gaps) > 0 && time.Since(lastReport) > 15*time.Second {
			lastReport = time.Now()
			t.Logf("waiting: owed syslog messages not archived yet, among them %q", gaps)
		}
		return len(gaps) == 0
	})
	if len(owed) < len(syslogSent)/3 {
		t.Fatalf("only %d of %d syslog messages archived: more than the tails of killed connections lost", len(owed), len(syslogSent))
	}
	// What each killed connection lost: how long before the kill that cut it the
	// lost tail began, and what was written into it after the kill (the sender
	// learns of a dead connection only when a later write fails).
	lost, cut, dead, worst := 0, 0, 0, time.Duration(0)
	for _, ids := range tails {
		n := len(owedOfTails([][]string{ids}, archived))
		if n == len(ids) {
			continue
		}
		lost += len(ids) - n
		cut++
		var kill time.Time // the first kill after the connection's first message
		for _, k := range killTimes {
			if k.After(writtenAt[ids[0]]) {
				kill = k
				break
			}
		}
		for _, id := range ids[n:] {
			if at := writtenAt[id]; !kill.IsZero() && at.After(kill) {
				dead++
			} else if !kill.IsZero() {
				worst = max(worst, kill.Sub(at))
			}
		}
	}
	t.Logf("syslog: %d messages archived and owed; %d lost in the tails of %d killed connections, the earliest written %s before its kill, %d written after it",
		len(owed), lost, cut, worst, dead)
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	docs = testutil.ArchiveDocs(t, archive)
	byID := map[string]int{}
	for _, d := range docs {
		byID[fmt.Sprint(testutil.Field(d, "event.id"))]++
	}
	dups := 0
	for _, n := range byID {
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("archive: %d documents, %d distinct event.id, %d duplicates", len(docs), len(byID), dups)
	if dups != 0 {
		t.Errorf("%d duplicate documents by event.id", dups)
	}
}
