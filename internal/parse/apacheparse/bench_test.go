package apacheparse

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// benchInput is a realistic mix: mostly combined lines with long user agents, some
// common, vhost_combined and IPv6 lines, and the odd probe.
func benchInput() []byte {
	var b bytes.Buffer
	uas := []string{
		`Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36`,
		`Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15`,
		`curl/8.4.0`,
	}
	for i := 0; i < 400; i++ {
		switch i % 8 {
		case 0:
			fmt.Fprintf(&b, "10.%d.%d.%d - - [05/Jan/2024:09:%02d:%02d +0100] \"GET /static/app.%d.js HTTP/1.1\" 200 %d\n", i%250, i%7, i%100, i%60, i%60, i, 1000+i)
		case 1:
			fmt.Fprintf(&b, "www.example.com:443 203.0.113.%d - - [05/Jan/2024:09:15:02 +0100] \"GET /index.html HTTP/1.1\" 200 5120 \"-\" \"%s\"\n", i%250, uas[i%3])
		case 2:
			fmt.Fprintf(&b, "2001:db8::%x - alice [05/Jan/2024:09:15:02 +0100] \"POST /api/v1/items?id=%d&page=2 HTTP/2.0\" 201 87 \"https://example.com/app/items\" \"%s\"\n", i, i, uas[i%3])
		default:
			fmt.Fprintf(&b, "198.51.100.%d - - [05/Jan/2024:09:15:%02d +0100] \"GET /products/%d/reviews?sort=desc HTTP/1.1\" %d %d \"https://www.example.com/products/%d\" \"%s\"\n", i%250, i%60, i, 200+(i%3)*102, 2000+i*3, i, uas[i%3])
		}
	}
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	input := benchInput()
	lines := bytes.Split(bytes.TrimRight(input, "\n"), []byte("\n"))
	p := New()
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
