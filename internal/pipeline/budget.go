package pipeline

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
)

// intakeBudget bounds the memory every source's Store calls hold at once on this
// node (their batch copies and compressed messages until JetStream acknowledges
// them), so that many concurrent connections wait for each other instead of growing
// the heap past limits.memory. It also recycles the batch buffers.
type intakeBudget struct {
	sem  *semaphore.Weighted
	size int64
	bufs sync.Pool // *[]byte of poolBufCap
}

// poolBufCap holds a full raw batch or its compressed form.
var poolBufCap = event.MaxEncodedLen(event.MaxBatchBytes + 64<<10)

func newIntakeBudget(bytes int) *intakeBudget {
	return &intakeBudget{sem: semaphore.NewWeighted(int64(bytes)), size: int64(bytes)}
}

// acquire reserves what storing n record bytes holds: the records copied into
// batches and their compressed messages. It waits until that much of the budget is
// free or ctx ends, which it reports as component.ErrFull (the sender retries).
func (b *intakeBudget) acquire(ctx context.Context, n int) (release func(), err error) {
	w := min(int64(n)*2+int64(poolBufCap), b.size)
	if err := b.sem.Acquire(ctx, w); err != nil {
		return nil, fmt.Errorf("%w: the intake's share of limits.memory is in use (%v)", component.ErrFull, err)
	}
	return func() { b.sem.Release(w) }, nil
}

func (b *intakeBudget) get() []byte {
	if p, ok := b.bufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, poolBufCap)
}

// put recycles buf unless it grew past the pooled size (an oversized record).
func (b *intakeBudget) put(buf []byte) {
	if cap(buf) < poolBufCap || cap(buf) > 2*poolBufCap {
		return
	}
	buf = buf[:0]
	b.bufs.Put(&buf)
}

// SetMemoryLimit sets the Go runtime's soft memory limit to 80% of limits.memory
// (the rest is for what the runtime does not count but the resident set does: the
// program's code, ~25 MiB of it touched, and the C library), unless the GOMEMLIMIT environment variable already set
// one. It returns the limit in force and where it came from. The limit is
// process-wide runtime state: only the command that runs the pipeline calls this.
func SetMemoryLimit(l config.Limits) (limit int64, from string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	limit = int64(l.Memory) / 10 * 8
	debug.SetMemoryLimit(limit)
	return limit, "limits.memory"
}
