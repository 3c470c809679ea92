package cloudwatchparse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// benchPayload builds a realistic DATA_MESSAGE: n log events with Lambda-, VPC-flow-
// and JSON-application-style messages (escapes included), as CloudWatch sends them.
func benchPayload(n int) []byte {
	msgs := []string{
		"START RequestId: 06e46194-f277-454e-88d3-1dd7e3860eaa Version: $LATEST\n",
		"REPORT RequestId: 06e46194-f277-454e-88d3-1dd7e3860eaa\tDuration: 9.14 ms\tBilled Duration: 10 ms\tMemory Size: 128 MB\tMax Memory Used: 36 MB\t\n",
		"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
		`{"level":"info","ts":"2024-05-01T10:00:00.123Z","msg":"request served","method":"GET","path":"/api/v1/items?id=42","status":200,"latency_ms":12.5,"user_agent":"Mozilla/5.0 (X11; Linux x86_64)"}`,
	}
	type le struct {
		ID        string `json:"id"`
		Timestamp int64  `json:"timestamp"`
		Message   string `json:"message"`
	}
	events := make([]le, n)
	for i := range events {
		events[i] = le{
			ID:        fmt.Sprintf("3719971756290717428835512580704011470483764099463361%04d", i),
			Timestamp: 1668093027015 + int64(i),
			Message:   msgs[i%len(msgs)],
		}
	}
	b, _ := json.Marshal(map[string]any{
		"messageType": "DATA_MESSAGE", "owner": "231436140809",
		"logGroup": "/aws/lambda/app", "logStream": "2022/11/10/[$LATEST]26b6a45d574f442ea28438923cbf7bf7",
		"subscriptionFilters": []string{"to-firehose"}, "logEvents": events,
	})
	return b
}

type counter struct {
	parsetest.Collector
	n int
}

func (c *counter) Emit(e *event.Event) error {
	c.n++
	return c.Collector.Emit(e)
}

func benchmark(b *testing.B, p parse.Parser, input []byte, size int) {
	c := &counter{Collector: parsetest.Collector{Discard: true}}
	if err := p.Parse(input, c); err != nil || c.n == 0 {
		b.Fatalf("err %v, %d events", err, c.n)
	}
	perRecord := c.n
	b.SetBytes(int64(size))
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

// BenchmarkParse parses the decoded JSON payload (SetBytes: its size).
func BenchmarkParse(b *testing.B) {
	in := benchPayload(400)
	benchmark(b, New(NewConfig(), nil), in, len(in))
}

// BenchmarkParseGzip parses the gzip payload as Firehose delivers it; SetBytes counts
// the decompressed size, so the figure compares with BenchmarkParse.
func BenchmarkParseGzip(b *testing.B) {
	in := benchPayload(400)
	benchmark(b, New(NewConfig(), nil), gz(in), len(in))
}

// BenchmarkParseKinesis parses a Kinesis event with four base64 gzip payloads.
func BenchmarkParseKinesis(b *testing.B) {
	in := benchPayload(100)
	var buf bytes.Buffer
	buf.WriteString(`{"Records":[`)
	for i := range 4 {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"kinesis":{"data":"` + base64Std(gz(in)) + `"},"eventSource":"aws:kinesis"}`)
	}
	buf.WriteString(`]}`)
	benchmark(b, New(NewConfig(), nil), buf.Bytes(), 4*len(in))
}

// BenchmarkParseFirehoseS3 parses an S3 object as Firehose writes it without a
// transformation: four gzip payloads back to back (SetBytes: the decompressed size).
func BenchmarkParseFirehoseS3(b *testing.B) {
	in := benchPayload(100)
	var obj []byte
	for range 4 {
		obj = append(obj, gz(in)...)
	}
	benchmark(b, New(NewConfig(), nil), obj, 4*len(in))
}
