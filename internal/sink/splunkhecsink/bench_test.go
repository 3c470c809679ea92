package splunkhecsink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
)

// instantHEC answers every event request with an ackId and every ack query with
// true, counting events by their line ends; the cost measured is the sink's.
type instantHEC struct {
	events atomic.Int64
	next   atomic.Uint64
	zr     sync.Pool
}

func (h *instantHEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, _ := h.zr.Get().(*gzip.Reader)
		if zr == nil {
			var err error
			if zr, err = gzip.NewReader(r.Body); err != nil {
				w.WriteHeader(400)
				return
			}
		} else if err := zr.Reset(r.Body); err != nil {
			w.WriteHeader(400)
			return
		}
		defer h.zr.Put(zr)
		rd = zr
	}
	data, _ := io.ReadAll(rd)
	if r.URL.Path == "/services/collector/ack" {
		var q struct {
			Acks []uint64 `json:"acks"`
		}
		_ = json.Unmarshal(data, &q)
		out := map[string]bool{}
		for _, id := range q.Acks {
			out[strconv.FormatUint(id, 10)] = true
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"acks": out})
		return
	}
	h.events.Add(int64(bytes.Count(data, []byte("}\n"))))
	fmt.Fprintf(w, `{"text":"Success","code":0,"ackId":%d}`, h.next.Add(1))
}

// BenchmarkSink measures events/s and MiB/s of ECS documents (~600 bytes, like a
// CloudTrail record) through the sink into a local HEC that acknowledges at once.
func BenchmarkSink(b *testing.B) {
	for _, ack := range []bool{false, true} {
		b.Run(fmt.Sprintf("ack=%v", ack), func(b *testing.B) {
			hec := &instantHEC{}
			srv := httptest.NewServer(hec)
			defer srv.Close()
			cfg := NewConfig()
			cfg.URL = srv.URL
			cfg.Token = "bench"
			cfg.IndexerAcknowledgement = ack
			cfg.Ack.PollInterval = 10 * time.Millisecond
			s, err := New(cfg, component.SinkDeps{Name: "bench", Log: slog.New(slog.DiscardHandler),
				Metrics: component.NewMetrics(prometheus.NewRegistry())})
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			const per = 500
			var docs bytes.Buffer
			for i := range per {
				fmt.Fprintf(&docs, `{"@timestamp":"2026-03-04T05:06:07.123Z","event":{"dataset":"aws.cloudtrail","id":"%032d","action":"GetObject","outcome":"success"},"host":{"name":"ip-10-0-0-%d"},"cloud":{"provider":"aws","region":"eu-west-1","account":{"id":"123456789012"}},"source":{"ip":"10.1.2.%d"},"user":{"name":"alice"},"aws":{"cloudtrail":{"event_type":"AwsApiCall","request_parameters":"{\"bucketName\":\"logs\",\"key\":\"2026/03/04/obj-%d\"}"}},"message":"GetObject on logs by alice"}`+"\n", i, i%250, i%250, i)
			}
			body := docs.Bytes()
			var done sync.WaitGroup
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				done.Add(1)
				cp := bytes.Clone(body) // the sink owns a batch's bytes
				bt := component.NewBatch("aws.cloudtrail", uint64(i+1), time.Now(), cp, per, func(error) { done.Done() })
				if err := s.Consume(context.Background(), bt); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
			done.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "events/s")
			if got := hec.events.Load(); got != int64(b.N*per) {
				b.Fatalf("HEC got %d events, want %d", got, b.N*per)
			}
		})
	}
}
