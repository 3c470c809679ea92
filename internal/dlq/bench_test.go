package dlq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/wire"
)

// BenchmarkReplay measures replaying letters of 200 bytes in chunks of 500 on the
// embedded stream with sync always (one fsync per stored copy and per removal).
func BenchmarkReplay(b *testing.B) {
	n := startNode(b)
	ctx := context.Background()
	const letters = 500
	rec := make([]byte, 200)
	for i := range rec {
		rec[i] = 'x'
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		var futs []jetstream.PubAckFuture
		for i := range letters {
			l := component.Letter{Stage: "decode", Reason: fmt.Sprintf("line %d: bad", i), Source: "bench", Format: "lines",
				Time: time.Now(), Original: rec}
			f, err := n.st.PublishAsync(wire.LetterMsg(l), "")
			if err != nil {
				b.Fatal(err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		b.StartTimer()
		res, err := Replay(ctx, n.st, Filter{Source: "bench"}, ReplayOptions{Limit: letters}, nil)
		if err != nil || res.Replayed != letters {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*letters)/b.Elapsed().Seconds(), "letters/s")
}
