package deliver_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/deliver"
)

// BenchmarkEngine measures the engine's own cost per document (framing into
// requests, dispatch, settling and acknowledging batches) with a protocol that
// frames a line and answers every request at once.
func BenchmarkEngine(b *testing.B) {
	const per = 500
	var docs bytes.Buffer
	for i := range per {
		fmt.Fprintf(&docs, `{"@timestamp":"2026-03-04T05:06:07.123Z","event":{"dataset":"aws.cloudtrail","id":"%032d"},"message":"GetObject on logs by alice","source":{"ip":"10.1.2.%d"}}`+"\n", i, i%250)
	}
	body := docs.Bytes()
	frame := func(dst, doc []byte, _ *component.Batch) ([]byte, int) {
		at := len(dst)
		dst = append(dst, doc...)
		return append(dst, '\n'), at
	}
	send := func(context.Context, []byte, *deliver.Request) deliver.Result {
		return deliver.Result{Outcome: deliver.Delivered}
	}
	e := deliver.New(deliver.Config{Name: "bench", Sink: "bench", MaxBytes: 1 << 20, MaxEvents: 1000, MaxWait: time.Millisecond,
		Overhead: 1, MaxInFlight: 4, Backoff: deliver.Backoff{Initial: time.Millisecond, Max: time.Millisecond},
		Counters: component.NewMetrics(prometheus.NewRegistry()).For("sink", "bench")},
		deliver.Protocol{Frame: frame, Send: send})
	if err := e.Start(nil); err != nil {
		b.Fatal(err)
	}
	var done sync.WaitGroup
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		done.Add(1)
		bt := component.NewBatch("aws.cloudtrail", uint64(i+1), time.Now(), body, per, func(error) { done.Done() })
		if err := e.Consume(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
	}
	e.Stop(context.Background(), nil)
	done.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "events/s")
}
