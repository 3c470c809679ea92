package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fetchIter hands out a consumer's messages one by one from successive pull
// requests of at most n messages and maxBytes bytes, one request at a time, so that
// what waits in the client stays within maxBytes. (nats.go's Consumer.Messages
// bounds the buffered bytes only without a count, and then buffers in a channel of
// 1,000,000 pointers — 8 MiB that every garbage collection scans; with a count
// besides, it no longer bounds the bytes buffered.)
//
// Next is called by one goroutine; Drain may be called by another.
type fetchIter struct {
	cons     jetstream.Consumer
	n        int
	maxBytes int
	wait     time.Duration

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
			b, err := f.cons.Fetch(f.n, jetstream.FetchMaxBytes(f.maxBytes), jetstream.FetchMaxWait(f.wait))
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
