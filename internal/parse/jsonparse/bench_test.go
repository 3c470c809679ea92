package jsonparse

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// benchLines are realistic JSON log lines (application logs, Kubernetes audit, an
// identity provider's events) from the golden cases.
func benchLines(b *testing.B) [][]byte {
	data, err := os.ReadFile(filepath.Join("testdata", "app_logs", "input.log"))
	if err != nil {
		b.Fatal(err)
	}
	var lines [][]byte
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			lines = append(lines, l)
		}
	}
	return lines
}

// BenchmarkParse measures parse and encode together, as a processing worker runs them.
func BenchmarkParse(b *testing.B) {
	lines := benchLines(b)
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	p := New(defaults())
	c := &parsetest.Collector{Discard: true}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			if err := p.Parse(l, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(lines))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)*float64(size)/(1<<20)/b.Elapsed().Seconds(), "MiB/s")
}

func BenchmarkValidate(b *testing.B) {
	lines := benchLines(b)
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			if err := ValidateObject(l); err != nil {
				b.Fatal(err)
			}
		}
	}
}
