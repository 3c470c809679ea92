package syslogparse

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// benchInput mixes what a syslog relay receives: RFC 5424 with and without
// structured data, BSD lines with tags and PIDs, and Cisco-style lines.
func benchInput() []byte {
	var b bytes.Buffer
	for i := 0; i < 400; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "<165>1 2024-01-05T12:00:%02d.%06dZ web%02d.example.com nginx %d ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"%d\"] GET /index.html 200 from 198.51.100.%d\n", i%60, i*7, i%10, 1000+i, i, i%250)
		case 1:
			fmt.Fprintf(&b, "<86>Jan  5 12:00:%02d bastion sshd[%d]: Accepted publickey for deploy from 203.0.113.%d port %d ssh2: ED25519 SHA256:Xk3r9v0aZbqLxX2Lr5sO8c0Q\n", i%60, 2000+i, i%250, 40000+i)
		case 2:
			fmt.Fprintf(&b, "<85>Jan  5 12:00:%02d ip-172-31-30-110 sudo[%d]: ec2-user : TTY=pts/0 ; PWD=/var/log ; USER=root ; COMMAND=/bin/tail secure\n", i%60, 6000+i)
		case 3:
			fmt.Fprintf(&b, "<189>%d: *Jan  5 12:00:%02d.483 UTC: %%SYS-5-CONFIG_I: Configured from console by vty2 (10.34.195.%d)\n", i, i%60, i%250)
		default:
			fmt.Fprintf(&b, "<14>1 2024-01-05T12:00:%02d+01:00 app-%d.internal payments %d - - request completed in %dms status=ok user=u%d\n", i%60, i%7, 300+i, i%90, i)
		}
	}
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	input := benchInput()
	lines := bytes.Split(bytes.TrimRight(input, "\n"), []byte("\n"))
	p := newTestParser(b)
	c := &parsetest.Collector{Discard: true}
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			if err := p.Parse(l, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
