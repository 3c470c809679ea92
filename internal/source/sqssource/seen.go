package sqssource

import (
	"sync"
	"time"
)

// claim is what the seen set says of a received message.
type claim int

const (
	claimNew     claim = iota // not seen: the caller now stores it
	claimStoring              // another receive loop is storing it
	claimStored               // stored already: delete it, do not store it again
)

// seen remembers the IDs of the messages this source is storing and has stored, so
// that a message SQS hands out again — its visibility ran out before the delete
// (a slow store or a slow answer from the queue), or the delete failed — is
// deleted rather than stored a second time. Stored IDs are kept for keep and at
// most max of them (oldest forgotten first); what is forgotten and received again
// is stored again under a new batch ID. A message received by another Vigil node
// is not known here.
//
// seen is safe for concurrent use by the receive loops.
type seen struct {
	keep time.Duration
	max  int

	mu      sync.Mutex
	storing map[string]struct{}
	stored  map[string]time.Time
	order   []storedID // stored IDs, oldest first
	head    int        // order[:head] is forgotten
}

type storedID struct {
	id string
	at time.Time
}

func newSeen(keep time.Duration, max int) *seen {
	return &seen{keep: keep, max: max, storing: map[string]struct{}{}, stored: map[string]time.Time{}}
}

// claim marks id as being stored by the caller when it is new.
func (s *seen) claim(id string, now time.Time) claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget(now)
	if _, ok := s.stored[id]; ok {
		return claimStored
	}
	if _, ok := s.storing[id]; ok {
		return claimStoring
	}
	s.storing[id] = struct{}{}
	return claimNew
}

// done ends the caller's claims on ids: stored or not (the store failed, and the
// messages may be received and claimed again).
func (s *seen) done(ids []string, stored bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.storing, id)
		if stored {
			s.stored[id] = now
			s.order = append(s.order, storedID{id, now})
		}
	}
	s.forget(now)
}

// forget drops stored IDs older than keep and the oldest beyond max.
func (s *seen) forget(now time.Time) {
	for s.head < len(s.order) {
		o := s.order[s.head]
		if len(s.order)-s.head <= s.max && now.Sub(o.at) < s.keep {
			break
		}
		if at, ok := s.stored[o.id]; ok && at.Equal(o.at) {
			delete(s.stored, o.id)
		}
		s.order[s.head] = storedID{}
		s.head++
	}
	// Reuse the slice's front once half of it is forgotten.
	if s.head > 1024 && s.head*2 > len(s.order) {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
}

// len returns how many stored IDs are remembered.
func (s *seen) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}
