package filesource

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
)

// batch collects one file's records for one Intake.Store call, copied into one arena.
type batch struct {
	arena   []byte
	ends    []int
	recs    [][]byte
	letters []component.Letter
	buf     []byte
	// end is the file offset every record of the batch came from before: the
	// checkpoint once the batch is stored.
	end int64
	// stopping is set by Stop; the run loop reads no further.
	stopping atomic.Bool
}

func (b *batch) readBuf() []byte {
	if b.buf == nil {
		b.buf = make([]byte, readChunk)
	}
	return b.buf
}

func (b *batch) add(rec []byte) {
	b.arena = append(b.arena, rec...)
	b.ends = append(b.ends, len(b.arena))
}

// addLetter keeps a rejected line for the dead-letter stream; Original is copied.
func (b *batch) addLetter(l component.Letter) {
	l.Original = append([]byte(nil), l.Original...)
	b.letters = append(b.letters, l)
}

func (b *batch) empty() bool { return len(b.ends) == 0 && len(b.letters) == 0 }

func (b *batch) full(maxLines, maxBytes int) bool {
	return len(b.ends)+len(b.letters) >= maxLines || len(b.arena)+3*len(b.ends) >= maxBytes
}

func (b *batch) records() [][]byte {
	b.recs = b.recs[:0]
	start := 0
	for _, end := range b.ends {
		b.recs = append(b.recs, b.arena[start:end:end])
		start = end
	}
	return b.recs
}

func (b *batch) reset() {
	b.arena = b.arena[:0]
	b.ends = b.ends[:0]
	clear(b.letters)
	b.letters = b.letters[:0]
}

// store stores the letters, then the records, retrying with backoff while the stream
// is full or unavailable, until ctx ends. Not returning is the backpressure: the file
// is not read further meanwhile.
func (b *batch) store(ctx context.Context, s *Source, id string) error {
	backoff := 20 * time.Millisecond
	s.counters.Received(len(b.ends), len(b.arena))
	for {
		err := b.storeOnce(ctx, s, id)
		if err == nil {
			return nil // the intake counts what it stored
		}
		if errors.Is(err, component.ErrTooLarge) || ctx.Err() != nil {
			s.counters.Error("store")
			return fmt.Errorf("storing %d lines: %w", len(b.ends), err)
		}
		s.counters.Retry()
		s.log.Warn("file source: intake stream not taking lines; holding until it does", "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (b *batch) storeOnce(ctx context.Context, s *Source, id string) error {
	if len(b.letters) > 0 {
		for i := range b.letters {
			b.letters[i].ID = fmt.Sprintf("%s:dl%d", id, i)
		}
		if err := s.intake.DeadLetter(ctx, b.letters...); err != nil {
			return err
		}
		clear(b.letters)
		b.letters = b.letters[:0]
	}
	if len(b.ends) == 0 {
		return nil
	}
	return s.intake.Store(ctx, component.Records{Received: time.Now(), Records: b.records(), ID: id})
}

// id names the batch for the stream's duplicate detection: the range and a hash of
// its lines. It leaves the inode out on purpose: a copy made by copytruncate holds
// the same lines at the same offsets, and a range of it stored before a crash must be
// recognised too. Different lines never share an ID.
func (b *batch) id(source string, start int64) string {
	h := sha256.New()
	h.Write(b.arena)
	for _, l := range b.letters {
		h.Write(l.Original)
	}
	return fmt.Sprintf("file:%s:%d-%d:%x", source, start, b.end, h.Sum(nil)[:16])
}
