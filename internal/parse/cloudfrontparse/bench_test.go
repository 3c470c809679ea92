package cloudfrontparse

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// BenchmarkParse parses a few hundred CloudFront lines of the standard 33-column
// layout (with and without x-forwarded-for, encoded user agents, IPv6 viewers).
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "elastic_layout", "input.log"))
	if err != nil {
		b.Fatal(err)
	}
	var lines [][]byte
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(l) > 0 && l[0] != '#' {
			lines = append(lines, l)
		}
	}
	var input [][]byte
	size := 0
	for len(input) < 400 {
		for _, l := range lines {
			input = append(input, l)
			size += len(l) + 1
		}
	}
	p := New(Config{})
	c := &parsetest.Collector{Discard: true}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; i < b.N; i++ {
		for _, l := range input {
			if err := p.Parse(l, c); err != nil {
				b.Fatal(err)
			}
		}
		events += len(input)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
