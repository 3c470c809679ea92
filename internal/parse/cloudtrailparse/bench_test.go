package cloudtrailparse

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// benchInput builds a {"Records":[…]} file from the golden and Sigma samples: a few
// hundred realistic records (console logins, IAM changes, EC2, S3, STS).
func benchInput(b *testing.B) []byte {
	b.Helper()
	var recs [][]byte
	add := func(data []byte) {
		// Each record's own bytes come back as event.original.
		r := &recorder{}
		_ = New(NewConfig()).Parse(data, r)
		recs = append(recs, r.originals...)
	}
	paths, _ := filepath.Glob(filepath.Join("testdata", "*", "input.log"))
	if dir := sharedDirFromFuzz(); dir != "" {
		more, _ := filepath.Glob(filepath.Join(dir, "sigma", "cloudtrail-samples", "*", "*.json"))
		paths = append(paths, more...)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err == nil {
			add(data)
		}
	}
	if len(recs) < 50 {
		b.Fatalf("only %d sample records", len(recs))
	}
	var buf bytes.Buffer
	buf.WriteString(`{"Records":[`)
	for i, r := range recs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(r)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

func benchmarkParse(b *testing.B, input []byte) {
	p := New(NewConfig())
	c := &counter{Collector: parsetest.Collector{Discard: true}}
	if err := p.Parse(input, c); err != nil || c.n == 0 {
		b.Fatalf("err %v, %d events", err, c.n)
	}
	perRecord := c.n
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := p.Parse(input, c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(perRecord*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(testing.AllocsPerRun(5, func() { _ = p.Parse(input, c) })/float64(perRecord), "allocs/event")
}

// counter counts emitted events on top of encoding them.
type counter struct {
	parsetest.Collector
	n int
}

func (c *counter) Emit(e *event.Event) error {
	c.n++
	return c.Collector.Emit(e)
}

// recorder keeps a copy of each event's event.original.
type recorder struct {
	parsetest.Collector
	originals [][]byte
}

func (r *recorder) Emit(e *event.Event) error {
	if v, ok := e.Get("event.original"); ok {
		r.originals = append(r.originals, []byte(v.Str()))
	}
	return nil
}

func BenchmarkParse(b *testing.B) {
	benchmarkParse(b, benchInput(b))
}

// BenchmarkParseGzip measures the same file gzip-compressed, as CloudTrail writes it
// to S3; SetBytes counts the decompressed size.
func BenchmarkParseGzip(b *testing.B) {
	plain := benchInput(b)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(plain)
	zw.Close()
	p := New(NewConfig())
	c := &parsetest.Collector{Discard: true}
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(buf.Bytes(), c); err != nil {
			b.Fatal(err)
		}
	}
}
