package event

import (
	"testing"
	"time"
)

// benchEvent is a realistic 25-field ECS event, fields in the order a parser sets them
// (not sorted), the way an HTTP access log line comes out.
func benchEvent() *Event {
	var e Event
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	e.Add("@timestamp", Time(ts))
	e.Add("event.dataset", String("aws.alb"))
	e.Add("event.kind", String("event"))
	e.Add("event.category", Strings([]string{"web", "network"}))
	e.Add("event.outcome", String("success"))
	e.Add("event.duration", Int(12_345_000))
	e.Add("event.id", String("Vq3uGQ1xSzX7s0w3PbLx"))
	e.Add("source.ip", String("203.0.113.17"))
	e.Add("source.port", Int(51234))
	e.Add("destination.ip", String("10.0.3.44"))
	e.Add("destination.port", Int(8080))
	e.Add("http.request.method", String("GET"))
	e.Add("http.request.bytes", Int(231))
	e.Add("http.response.status_code", Int(200))
	e.Add("http.response.bytes", Int(5312))
	e.Add("http.version", String("1.1"))
	e.Add("url.original", Bytes([]byte("/api/v1/orders?id=8812&expand=items,customer")))
	e.Add("url.domain", String("shop.example.com"))
	e.Add("url.path", String("/api/v1/orders"))
	e.Add("user_agent.original", Bytes([]byte("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36")))
	e.Add("tls.version", String("1.3"))
	e.Add("tls.cipher", String("TLS_AES_128_GCM_SHA256"))
	e.Add("aws.elb.name", String("app/shop-prod/50dc6c495c0c9188"))
	e.Add("aws.elb.target_processing_time.sec", Float(0.012))
	e.Add("trace.id", String("Root=1-58337262-36d228ad5d99923122bbe354"))
	return &e
}

func BenchmarkEncoderAppend(b *testing.B) {
	e := benchEvent()
	var enc Encoder
	buf := enc.Append(nil, e)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = enc.Append(buf[:0], e)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppendString(b *testing.B) {
	s := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 — ✓"
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendString(buf[:0], s)
	}
}

// BenchmarkStreamCompression is what one stream hop's S2 costs per events batch
// (~900 KiB of ECS documents, made from benchEvent with varying numbers): the
// producer's Compress and the consumer's Decompress, and the compressed size as a
// share of the input (ratio). docs/performance.md weighs it against `none`.
func BenchmarkStreamCompression(b *testing.B) {
	var enc Encoder
	var docs []byte
	e := benchEvent()
	for i := 0; len(docs) < MaxBatchBytes; i++ {
		e.Set("source.port", Int(int64(1024+(i*7919)%60000)))
		e.Set("http.response.body.bytes", Int(int64((i*104729)%100000)))
		docs = append(enc.Append(docs, e), '\n')
	}
	body := Compress(docs)
	b.Run("compress", func(b *testing.B) {
		b.SetBytes(int64(len(docs)))
		dst := make([]byte, 0, MaxEncodedLen(len(docs)))
		for range b.N {
			dst = CompressTo(dst, docs)
		}
		b.ReportMetric(float64(len(body))/float64(len(docs)), "ratio")
	})
	b.Run("decompress", func(b *testing.B) {
		b.SetBytes(int64(len(docs)))
		var dst []byte
		for range b.N {
			var err error
			if dst, err = Decompress(dst, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
