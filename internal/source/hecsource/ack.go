package hecsource

import (
	"sync"
	"time"
)

// acks keeps the indexer acknowledgement state of the channels. The source stores a
// request's events before it hands out the request's ackId, so every id handed out
// on a channel is acknowledged at once: a channel's whole state is the next id, and
// no list of pending ids has to be kept or bounded.
type acks struct {
	max  int
	idle time.Duration
	now  func() time.Time

	mu sync.Mutex
	ch map[string]*channel
}

type channel struct {
	next uint64    // ids below next were handed out
	last time.Time // last use, for expiry
}

func newAcks(max int, idle time.Duration, now func() time.Time) *acks {
	return &acks{max: max, idle: idle, now: now, ch: map[string]*channel{}}
}

// admit reports whether the channel may be used: it exists, or there is room for
// it (after forgetting idle channels). It marks the channel used.
func (a *acks) admit(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if c, ok := a.ch[name]; ok {
		c.last = now
		return true
	}
	if len(a.ch) >= a.max {
		a.sweep(now)
	}
	if len(a.ch) >= a.max {
		return false
	}
	a.ch[name] = &channel{last: now}
	return true
}

// issue hands out the next ackId of a channel, for a request whose events are
// stored. A channel that expired while the request was stored starts anew, past
// the max_channels bound by at most the requests in flight.
func (a *acks) issue(name string) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.ch[name]
	if !ok {
		c = &channel{}
		a.ch[name] = c
	}
	c.last = a.now()
	id := c.next
	c.next++
	return id
}

// query answers the status of ids on a channel: true for ids handed out, false for
// others and for channels not known (never used, or expired).
func (a *acks) query(name string, ids []uint64) map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]bool, len(ids))
	c, ok := a.ch[name]
	if ok {
		c.last = a.now()
	}
	for _, id := range ids {
		out[uitoa(id)] = ok && id < c.next
	}
	return out
}

// sweep forgets channels idle longer than the timeout.
func (a *acks) sweep(now time.Time) {
	for k, c := range a.ch {
		if now.Sub(c.last) > a.idle {
			delete(a.ch, k)
		}
	}
}

func (a *acks) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ch)
}
