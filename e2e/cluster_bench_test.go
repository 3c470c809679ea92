package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClusterScale measures HTTP NDJSON → archive on a three-server NATS
// cluster (3 replicas, fsync always) with 1 or 2 ingest nodes and 1 or 2 process
// nodes: the time from the first request until processing and the archive sink
// have acknowledged everything, for benchEvents events sent by 4 clients spread
// over the ingest nodes. Each iteration starts a fresh cluster; run it with
// -benchtime=1x. It reports events/s and, with two process nodes, the share of
// events the busier one processed (0.5 = evenly spread).
func BenchmarkClusterScale(b *testing.B) {
	for _, tc := range []struct{ ingest, process int }{{1, 1}, {2, 1}, {1, 2}, {2, 2}} {
		b.Run(fmt.Sprintf("ingest=%d/process=%d", tc.ingest, tc.process), func(b *testing.B) {
			for range b.N {
				benchClusterOnce(b, tc.ingest, tc.process)
			}
		})
	}
}

const (
	benchEvents  = 200_000
	benchPerReq  = 500
	benchClients = 4
)

func benchClusterOnce(b *testing.B, ingest, process int) {
	b.StopTimer()
	c := startVigilClusterTB(b, ingest, process)
	ingestNodes, processNodes := c.byRole("ingest"), c.byRole("process")
	// One request body, 500 events of ~150 bytes, reused: the events differ in
	// event.id (from their intake position), which is all the archive needs.
	var body bytes.Buffer
	for i := range benchPerReq {
		fmt.Fprintf(&body, "{\"tid\":\"bench-%d\",\"message\":\"GET /index.html 200 from 10.0.0.%d user alice agent curl/8.5\",\"n\":%d}\n", i, i%255, i)
	}
	payload := body.Bytes()
	requests := benchEvents / benchPerReq
	var next atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	b.StartTimer()
	start := time.Now()
	for w := range benchClients {
		wg.Go(func() {
			for {
				n := next.Add(1) - 1
				if n >= int64(requests) {
					return
				}
				nd := ingestNodes[(int(n)+w)%len(ingestNodes)]
				for {
					resp, err := client.Post("http://"+nd.http+"/v1/events/apps", "application/x-ndjson", bytes.NewReader(payload))
					if err == nil {
						_, _ = drainClose(resp)
						if resp.StatusCode == 200 {
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	acked := time.Since(start)
	// Drained: processing and the archive sink have nothing pending or unacknowledged.
	for {
		st, err := processNodes[0].status()
		if err == nil && len(st.Consumers) == 2 {
			done := true
			for _, cs := range st.Consumers {
				if cs.Pending > 0 || cs.AckPending > 0 {
					done = false
				}
			}
			if done {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(benchEvents)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(benchEvents)/acked.Seconds(), "acked-events/s")
	if process > 1 {
		var counts []float64
		total := 0.0
		for _, nd := range processNodes {
			n := processedEvents(b, nd)
			counts = append(counts, n)
			total += n
		}
		if total > 0 {
			b.ReportMetric(max(counts[0], counts[1])/total, "busiest-share")
		}
	}
	idx := newArchiveIndex(c.archive)
	idx.refresh(b)
	if idx.docs != benchEvents || len(idx.byID) != benchEvents {
		b.Fatalf("archive holds %d documents, %d distinct event.id; want %d", idx.docs, len(idx.byID), benchEvents)
	}
	c.stop(b)
}

// processedEvents reads vigil_received_events_total of processing from a node's
// /metrics.
func processedEvents(b *testing.B, nd *clusterNode) float64 {
	resp, err := http.Get("http://" + nd.admin + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sum := 0.0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "vigil_received_events_total{") && strings.Contains(line, `kind="processing"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}
