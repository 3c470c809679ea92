package syslogsource

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
)

// batch collects framed messages for one Intake.Store call. Messages are copied into
// one arena, so a batch costs no allocation per message once warm.
type batch struct {
	arena   []byte
	ends    []int // message i is arena[ends[i-1]:ends[i]]
	recs    [][]byte
	letters []component.Letter
	first   time.Time // when the first message was read
	id      string    // the unit ID, once named (SourceDeps.UnitID)
}

func (b *batch) len() int { return len(b.ends) }

// size estimates the intake batch size, with the varint length of each record.
func (b *batch) size() int { return len(b.arena) + 3*len(b.ends) }

// fits reports whether a message of n bytes still goes into one intake message.
func (b *batch) fits(n int) bool { return b.size()+n+3 <= event.MaxBatchBytes }

func (b *batch) add(msg []byte, now time.Time) {
	if len(b.ends) == 0 && len(b.letters) == 0 {
		b.first = now
	}
	b.arena = append(b.arena, msg...)
	b.ends = append(b.ends, len(b.arena))
}

// addLetter keeps a rejected message for the dead-letter stream; original is copied.
func (b *batch) addLetter(l component.Letter, now time.Time) {
	if len(b.ends) == 0 && len(b.letters) == 0 {
		b.first = now
	}
	l.Original = append([]byte(nil), l.Original...)
	b.letters = append(b.letters, l)
}

func (b *batch) empty() bool { return len(b.ends) == 0 && len(b.letters) == 0 }

// records returns the messages as slices of the arena, valid until reset.
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
	b.id = ""
	b.arena = b.arena[:0]
	b.ends = b.ends[:0]
	clear(b.letters)
	b.letters = b.letters[:0]
}

// errPermanent marks a store error that retrying cannot fix.
var errPermanent = errors.New("permanent")

// storeOnce stores the batch's letters, then its records. Letters go first: they are
// few, and a retry after a failed Store must not dead-letter them twice.
func (s *Source) storeOnce(ctx context.Context, b *batch) error {
	if len(b.letters) > 0 {
		if err := s.intake.DeadLetter(ctx, b.letters...); err != nil {
			return classify(err)
		}
		clear(b.letters)
		b.letters = b.letters[:0]
	}
	if len(b.ends) == 0 {
		return nil
	}
	if b.id == "" && s.unitID != nil {
		b.id = s.unitID() // kept across the retries of this batch
	}
	err := s.intake.Store(ctx, component.Records{ID: b.id, Received: b.first, Records: b.records()})
	return classify(err)
}

func classify(err error) error {
	if err != nil && errors.Is(err, component.ErrTooLarge) {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	return err
}

// storeRetrying stores the batch, retrying with backoff while the stream is full or
// unavailable, until ctx ends. Not returning is the backpressure: the caller reads
// nothing meanwhile. It returns nil once stored, or the last error; the batch is
// reset either way and what was not stored is counted.
func (s *Source) storeRetrying(ctx context.Context, b *batch, proto string) error {
	defer b.reset()
	backoff := 20 * time.Millisecond
	for {
		err := s.storeOnce(ctx, b)
		if err == nil {
			return nil
		}
		if errors.Is(err, errPermanent) || ctx.Err() != nil {
			reason := "shutdown"
			if errors.Is(err, errPermanent) {
				reason = "stream_rejected"
			}
			n := b.len() + len(b.letters)
			s.counters.Discarded(reason, n)
			s.log.Error("syslog source: messages read but not stored", "proto", proto,
				"messages", n, "reason", reason, "err", err)
			return err
		}
		s.counters.Retry()
		s.limited.warn(s.log, "syslog source: intake stream not taking messages; holding the connection until it does",
			"proto", proto, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
