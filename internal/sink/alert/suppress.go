package alert

import (
	"container/list"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
)

// Suppress is the config of alert suppression.
type Suppress struct {
	// Window after an alert is accepted for sending during which alerts with the
	// same key are not sent but counted (vigil_discarded_total, reason
	// "suppressed"). 0 turns suppression off.
	Window time.Duration `yaml:"window"`
	// Key is the fields whose values together identify "the same alert", such as
	// [rule.id, source.ip]; a missing field counts as an empty value.
	Key []string `yaml:"key"`
	// MaxKeys bounds the keys remembered; the least recently sent is forgotten
	// first. The state is in memory, per node and per sink: a restart, or another
	// node, starts afresh.
	MaxKeys int `yaml:"max_keys"`
}

// Validate checks the config; prefix names it in errors ("suppress").
func (s Suppress) Validate(prefix string) error {
	var errs []error
	if s.Window < 0 {
		errs = append(errs, fmt.Errorf("%s.window: must not be negative", prefix))
	}
	if s.Window > 0 && len(s.Key) == 0 {
		errs = append(errs, fmt.Errorf("%s.key: required with a window (for example [rule.id, source.ip])", prefix))
	}
	for i, k := range s.Key {
		if k == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
			errs = append(errs, fmt.Errorf("%s.key[%d]: %q is not a field path", prefix, i, k))
		}
	}
	if s.MaxKeys < 1 {
		errs = append(errs, fmt.Errorf("%s.max_keys: must be at least 1", prefix))
	}
	return errors.Join(errs...)
}

// Suppressor remembers, per key, when an alert was last accepted for sending. It
// is safe for concurrent use.
type Suppressor struct {
	cfg Suppress
	now func() time.Time

	mu    sync.Mutex
	lru   *list.List // of *entry, most recently sent first
	byKey map[string]*list.Element
}

type entry struct {
	key string
	at  time.Time
	id  string // event.id of the alert that opened the window
}

// NewSuppressor returns a suppressor, or nil when cfg has no window. now, when
// not nil, replaces time.Now (tests).
func NewSuppressor(cfg Suppress, now func() time.Time) *Suppressor {
	if cfg.Window <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Suppressor{cfg: cfg, now: now, lru: list.New(), byKey: map[string]*list.Element{}}
}

// Suppressed reports whether the alert doc is to be held back, and otherwise
// records it as sent now. An alert with the event.id of the one that opened its
// key's window is a redelivery of that alert (its batch failed and came again)
// and is never suppressed, so suppression cannot lose it.
func (s *Suppressor) Suppressed(d Doc) bool {
	var k strings.Builder
	for i, f := range s.cfg.Key {
		if i > 0 {
			k.WriteByte(0)
		}
		v, _ := d.Field(f)
		k.WriteString(v)
	}
	key := k.String()
	id, _ := d.Field("event.id")
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.byKey[key]; ok {
		e := el.Value.(*entry)
		if now.Sub(e.at) < s.cfg.Window && (id == "" || e.id != id) {
			return true
		}
		if now.Sub(e.at) < s.cfg.Window {
			return false // the same alert again: the window stays as it was
		}
		e.at, e.id = now, id
		s.lru.MoveToFront(el)
		return false
	}
	s.byKey[key] = s.lru.PushFront(&entry{key: key, at: now, id: id})
	for s.lru.Len() > s.cfg.MaxKeys {
		old := s.lru.Back()
		s.lru.Remove(old)
		delete(s.byKey, old.Value.(*entry).key)
	}
	return false
}

// Len is the number of keys remembered.
func (s *Suppressor) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// Filter drops the suppressed alerts of an NDJSON batch and returns the rest, as
// NDJSON in a new slice, with their count and the number dropped. A document that
// does not decode is kept: the sink dead-letters it with its reason.
func (s *Suppressor) Filter(ndjson []byte) (kept []byte, n, dropped int) {
	kept = make([]byte, 0, len(ndjson))
	_ = event.EachLine(ndjson, func(doc []byte) error {
		if d, err := Decode(doc); err == nil && s.Suppressed(d) {
			dropped++
			return nil
		}
		kept = append(kept, doc...)
		kept = append(kept, '\n')
		n++
		return nil
	})
	return kept, n, dropped
}
