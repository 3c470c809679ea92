package albparse

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// benchInput is a few hundred representative lines: mostly ALB access lines of every
// type, with NLB TLS, connection-log and Classic ELB lines mixed in.
func benchInput(b *testing.B) [][]byte {
	var lines [][]byte
	for _, c := range []string{"alb_types", "alb_edge", "nlb_tls", "connection_log", "classic_elb"} {
		data, err := os.ReadFile(filepath.Join("testdata", c, "input.log"))
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(l) > 0 {
				lines = append(lines, l)
			}
		}
	}
	// Keep only lines that parse: rejects cost an error value each and are not the
	// traffic worth measuring.
	p := New(Config{})
	good := lines[:0]
	for _, l := range lines {
		var c parsetest.Collector
		if p.Parse(l, &c) == nil && len(c.Docs) == 1 {
			good = append(good, l)
		}
	}
	lines = good
	var out [][]byte
	for len(out) < 400 {
		out = append(out, lines...)
	}
	return out
}

func BenchmarkParse(b *testing.B) {
	lines := benchInput(b)
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	p := New(Config{})
	c := &parsetest.Collector{Discard: true}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			_ = p.Parse(l, c)
		}
		events += len(lines)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
