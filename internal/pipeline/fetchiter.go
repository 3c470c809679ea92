package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fetchIter hands out a consumer's messages one by one from successive pull
// requests of at most n messages, one request at a time. The count is what bounds
// the memory waiting in the client: producers cut event batches at
// event.MaxBatchBytes, so n batches take at most n such sizes (a single event larger
// than that travels alone, up to the stream's max payload).
//
// Why not nats.go's Consumer.Messages or a byte limit: with a byte limit only,
// Messages buffers in a channel of 1,000,000 pointers (8 MiB that every garbage
// collection scans), and with a count as well it stops bounding the bytes; and a pull
// request with a byte limit that reaches its count first ends with "409 Batch
// Completed", which on a clustered consumer can reach the client before the
// replicated deliveries of that request, losing them until ack_wait.
//
// Next is called by one goroutine; Drain may be called by another.
type fetchIter struct {
	cons jetstream.Consumer
	n    int
	wait time.Duration

	batch    jetstream.MessageBatch
	draining atomic.Bool
}

// Next returns the next message, waiting for it until ctx ends. After Drain it
// hands out what the current request still brings, then jetstream.ErrMsgIteratorClosed.
func (f *fetchIter) Next(ctx context.Context) (jetstream.Msg, error) {
	for {
		if f.batch == nil {
			if f.draining.Load() {
				return nil, jetstream.ErrMsgIteratorClosed
			}
			b, err := f.cons.Fetch(f.n, jetstream.FetchMaxWait(f.wait))
			if err != nil {
				return nil, err
			}
			f.batch = b
		}
		select {
		case m, ok := <-f.batch.Messages():
			if ok {
				return m, nil
			}
			// The request is done (full, or expired: not an error).
			err := f.batch.Error()
			f.batch = nil
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Drain makes Next end once the current request is done.
func (f *fetchIter) Drain() { f.draining.Store(true) }
