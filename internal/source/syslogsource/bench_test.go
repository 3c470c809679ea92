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
