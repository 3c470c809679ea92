package firehosesource_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// BenchmarkFirehoseToIntake measures Firehose deliveries into an ingest-only
// pipeline (embedded JetStream, sync-always): requests of 500 CloudWatch Logs
// subscription records (gzip payloads of 20 JSON log events, ~0.7 KiB each, so
// ~0.37 MB of request body), from 4 concurrent clients. An iteration is one request, answered 200 after every record is stored;
// MB/s counts request body bytes.
func BenchmarkFirehoseToIntake(b *testing.B) {
	for _, gz := range []bool{false, true} {
		b.Run(fmt.Sprintf("gzip=%v", gz), func(b *testing.B) { benchDeliveries(b, gz) })
	}
}

func benchDeliveries(b *testing.B, gz bool) {
	_, url := startPipeline(b, b.TempDir(), true)
	const perReq = 500
	records := make([][]byte, perReq)
	for i := range records {
		var payload bytes.Buffer
		fmt.Fprintf(&payload, `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/app","logStream":"2026/01/01/[$LATEST]abc%d","subscriptionFilters":["to-firehose"],"logEvents":[`, i)
		for e := range 20 {
			if e > 0 {
				payload.WriteByte(',')
			}
			fmt.Fprintf(&payload, `{"id":"3719971756290717428835512580704011470483764099463361%04d","timestamp":%d,"message":"{\"level\":\"info\",\"msg\":\"request served\",\"path\":\"/api/v1/items/%d\",\"status\":200,\"latency_ms\":%d.5}"}`, i*20+e, 1767225600000+int64(e), e, e)
		}
		payload.WriteString("]}")
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write(payload.Bytes())
		_ = zw.Close()
		records[i] = z.Bytes()
	}
	req := firehoseRequest(b, url, "bench", records, gz)
	body, _ := io.ReadAll(req.Body)
	hdr := req.Header
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(2) // 2 × GOMAXPROCS clients
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			r.Header = hdr.Clone()
			resp, err := client.Do(r)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*perReq)/b.Elapsed().Seconds(), "records/s")
}
