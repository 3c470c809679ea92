package sqssource

import (
	"fmt"
	"testing"
	"time"
)

func TestSeen(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	s := newSeen(time.Minute, 3)
	if c := s.claim("a", t0); c != claimNew {
		t.Fatalf("first claim of a: %v, want new", c)
	}
	if c := s.claim("a", t0); c != claimStoring {
		t.Fatalf("claim of a while it is stored: %v, want storing", c)
	}
	// A failed store releases the claim.
	s.done([]string{"a"}, false, t0)
	if c := s.claim("a", t0); c != claimNew {
		t.Fatalf("claim of a after a failed store: %v, want new", c)
	}
	s.done([]string{"a"}, true, t0)
	if c := s.claim("a", t0.Add(30*time.Second)); c != claimStored {
		t.Fatalf("claim of a once stored: %v, want stored", c)
	}
	// Forgotten after keep.
	if c := s.claim("a", t0.Add(time.Minute)); c != claimNew {
		t.Fatalf("claim of a after keep: %v, want new", c)
	}
	s.done([]string{"a"}, true, t0.Add(time.Minute))
	// At most max stored IDs, the oldest forgotten first.
	now := t0.Add(2 * time.Minute)
	for i := range 4 {
		id := fmt.Sprint("b", i)
		if c := s.claim(id, now); c != claimNew {
			t.Fatalf("claim of %s: %v, want new", id, c)
		}
		s.done([]string{id}, true, now)
	}
	if s.len() != 3 {
		t.Fatalf("%d stored IDs remembered, want 3", s.len())
	}
	if c := s.claim("b0", now); c != claimNew {
		t.Fatalf("claim of the oldest beyond max: %v, want new", c)
	}
	if c := s.claim("b3", now); c != claimStored {
		t.Fatalf("claim of the newest: %v, want stored", c)
	}
}

// TestSeenBounded: a long run keeps memory bounded by max.
func TestSeenBounded(t *testing.T) {
	s := newSeen(time.Hour, 1000)
	now := time.Unix(1_800_000_000, 0)
	for i := range 100_000 {
		id := fmt.Sprint(i)
		s.claim(id, now)
		s.done([]string{id}, true, now)
	}
	if s.len() != 1000 || len(s.order)-s.head != 1000 || cap(s.order) > 10_000 {
		t.Fatalf("remembered %d, order %d (head %d, cap %d): want 1000 and a bounded slice", s.len(), len(s.order), s.head, cap(s.order))
	}
}
