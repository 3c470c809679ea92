package filesource

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
)

// batch collects one file's records for one Intake.Store call, copied into one arena.
type batch struct {
	arena   []byte
	ends    []int
	recs    [][]byte
	letters []component.Letter
	scratch []byte
	// end is the file offset every record of the batch came from before: the
	// checkpoint once the batch is stored.
	end int64
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
// does not take them, until ctx ends. Not returning is the backpressure: the reader
// stops once every batch is queued. A batch too large for the stream (its
// max_payload below batch_max_bytes) is retried too, loudly: dropping it would lose
// its lines.
func (b *batch) store(ctx context.Context, s *Source, id string) error {
	backoff := 20 * time.Millisecond
	s.counters.Received(len(b.ends), len(b.arena))
	for {
		err := b.storeOnce(ctx, s, id)
		if err == nil {
			return nil // the intake counts what it stored
		}
		if ctx.Err() != nil {
			s.counters.Error("store")
			return fmt.Errorf("storing %d lines: %w", len(b.ends), err)
		}
		s.counters.Retry()
		if errors.Is(err, component.ErrTooLarge) {
			s.log.Error("file source: the intake stream refuses a batch as too large; lower batch_max_bytes below the stream's max payload", "err", err)
		} else {
			s.log.Warn("file source: intake stream not taking lines; holding until it does", "err", err)
		}
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

// id names the batch for the stream's duplicate detection: the offset it ends at and
// a hash of its records (their bytes and boundaries) and dead letters. It leaves the
// inode out on purpose: a copy made by copytruncate holds the same lines at the same
// offsets, and a batch of it stored before a crash must be recognised too. It leaves
// the start out too: what a batch holds is its records, and ranges with the same
// records ending at the same offset differ at most by empty lines. Different records
// never share an ID.
func (b *batch) id(source string) string {
	h := sha256.New()
	h.Write(b.arena)
	b.scratch = b.scratch[:0]
	for _, e := range b.ends {
		b.scratch = binary.LittleEndian.AppendUint64(b.scratch, uint64(e))
	}
	h.Write(b.scratch)
	var n [8]byte
	for _, l := range b.letters {
		binary.LittleEndian.PutUint64(n[:], uint64(len(l.Original)))
		h.Write(n[:])
		h.Write(l.Original)
	}
	return fmt.Sprintf("file:%s:%d:%x", source, b.end, h.Sum(nil)[:16])
}
