package syslogsource_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// BenchmarkTCPToIntake measures syslog over TCP into the intake stream on an
// ingest-only node (embedded JetStream, sync always): events/s and MiB/s of
// messages stored.
func BenchmarkTCPToIntake(b *testing.B) {
	for _, framing := range []string{"newline", "octet"} {
		b.Run(framing, func(b *testing.B) {
			cfg := testConfig(b, b.TempDir(), func(c *config.Config, s *syslogsource.Config) {
				c.Role = config.RoleIngest
				s.UDP = ""
			})
			p, src := start(b, cfg)
			msg := "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An application event log entry, number %08d"
			size := len(fmt.Sprintf(msg, 0))
			c, err := net.Dial("tcp", src.TCPAddr())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			w := bufio.NewWriterSize(c, 256<<10)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if framing == "octet" {
					fmt.Fprintf(w, "%d ", size)
					fmt.Fprintf(w, msg, i)
				} else {
					fmt.Fprintf(w, msg+"\n", i)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			testutil.Eventually(b, 5*time.Minute, "every message stored", func() bool {
				return metric(b, p.Metrics(), "vigil_sent_events_total") >= float64(b.N)
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkTCPToArchive measures the whole pipeline on syslog over one TCP
// connection: stored with sync-always, parsed to ECS, archived as gzip NDJSON. The
// half_bad corpus makes every other line no syslog at all (dead-lettered by
// processing): dead letters are batched like events, so it should run at no less
// than 70% of the clean rate. The clock stops when every line is archived or
// dead-lettered.
func BenchmarkTCPToArchive(b *testing.B) {
	for _, corpus := range []string{"clean", "half_bad"} {
		b.Run(corpus, func(b *testing.B) {
			cfg := testConfig(b, b.TempDir(), func(_ *config.Config, s *syslogsource.Config) { s.UDP = "" })
			p, src := start(b, cfg)
			msg := "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An application event log entry, number %08d\n"
			bad := "this line is no syslog message: a stack trace or a banner that was sent by mistake, line %08d ........................................\n"
			c, err := net.Dial("tcp", src.TCPAddr())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			w := bufio.NewWriterSize(c, 256<<10)
			b.SetBytes(int64(len(fmt.Sprintf(msg, 0))))
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if corpus == "half_bad" && i%2 == 1 {
					fmt.Fprintf(w, bad, i)
					continue
				}
				fmt.Fprintf(w, msg, i)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			testutil.Eventually(b, 5*time.Minute, "every line archived or dead-lettered", func() bool {
				return metricKind(b, p.Metrics(), "vigil_sent_events_total", "sink")+
					metricKind(b, p.Metrics(), "vigil_dead_lettered_total", "processing") >= float64(b.N)
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
