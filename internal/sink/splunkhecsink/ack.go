package splunkhecsink

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/internal/sink/deliver"
)

// maxAckQuery bounds the ackIds asked about in one ack request.
const maxAckQuery = 1000

// pendingAck is a request Splunk accepted and has not yet reported indexed, and
// when it was sent.
type pendingAck struct {
	req  *deliver.Request
	sent time.Time
}

// acker tracks the sink's pending acks and polls Splunk for them. Each entry holds
// one ack.max_pending slot, released when the entry leaves the map.
type acker struct {
	s       *Sink
	ctx     context.Context // the engine's: ends when the sink gives up
	mu      sync.Mutex
	pending map[uint64]*pendingAck
	closed  bool
}

// add registers an accepted request. After the acker has stopped, its events are
// given up (redelivered) instead.
func (a *acker) add(id uint64, p *pendingAck) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.s.pendSem
		a.s.engine.GiveUp(p.req)
		return
	}
	old := a.pending[id]
	a.pending[id] = p
	a.mu.Unlock()
	if old != nil {
		// The same ackId twice on one channel: Splunk restarted and numbers again
		// from zero, so the old request's ack will never come. Send it again now
		// rather than wait for its timeout.
		a.s.counters.Error("ack_reused")
		a.s.log.Warn("splunk_hec: Splunk reused an ackId (restarted?); sending the earlier request again", "ack_id", id)
		<-a.s.pendSem
		a.s.counters.Retry()
		a.s.engine.Resend(old.req)
	}
}

// loop polls every ack.poll_interval until the engine's context ends, then gives
// up whatever is still pending (its batches are redelivered).
func (a *acker) loop() {
	s := a.s
	t := time.NewTicker(s.cfg.Ack.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			a.mu.Lock()
			a.closed = true
			left := a.pending
			a.pending = nil
			a.mu.Unlock()
			for _, p := range left {
				<-s.pendSem
				s.engine.GiveUp(p.req)
			}
			return
		case <-t.C:
		}
		a.poll()
	}
}

type ackQuery struct {
	Acks []uint64 `json:"acks"`
}

type ackAnswer struct {
	Acks map[string]bool `json:"acks"`
}

// poll asks Splunk about every pending ackId, resolves those indexed, and sends
// again those older than ack.timeout.
func (a *acker) poll() {
	s := a.s
	a.mu.Lock()
	ids := make([]uint64, 0, len(a.pending))
	for id := range a.pending {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	slices.Sort(ids)
	for len(ids) > 0 && a.ctx.Err() == nil {
		chunk := ids[:min(len(ids), maxAckQuery)]
		ids = ids[len(chunk):]
		acked, ok := a.query(chunk)
		if !ok {
			break
		}
		for _, id := range acked {
			a.mu.Lock()
			p := a.pending[id]
			delete(a.pending, id)
			a.mu.Unlock()
			if p != nil {
				<-s.pendSem
				s.engine.Delivered(p.req)
			}
		}
	}
	// Lost acks: Splunk's guidance is to send the data again after a timeout. It may
	// then be indexed twice; HEC has no way to deduplicate.
	now := time.Now()
	var expired []*pendingAck
	a.mu.Lock()
	for id, p := range a.pending {
		if now.Sub(p.sent) >= s.cfg.Ack.Timeout {
			expired = append(expired, p)
			delete(a.pending, id)
		}
	}
	a.mu.Unlock()
	for _, p := range expired {
		<-s.pendSem
		s.counters.Error("ack_timeout")
		s.counters.Retry()
		s.log.Warn("splunk_hec: no indexer acknowledgement within ack.timeout; sending the request again (Splunk may index it twice)",
			"events", p.req.Len(), "timeout", s.cfg.Ack.Timeout)
		s.engine.Resend(p.req)
	}
}

// query asks about ids and returns those Splunk reports indexed; ok is false when
// the ack endpoint could not be asked (logged and counted; the next poll retries).
func (a *acker) query(ids []uint64) (acked []uint64, ok bool) {
	s := a.s
	body, _ := json.Marshal(ackQuery{Acks: ids})
	code, _, data, err := s.post(a.ctx, s.ackURL, body)
	if err != nil {
		if a.ctx.Err() == nil {
			s.counters.Error("ack_poll")
			s.log.Warn("splunk_hec: ack poll failed", "url", s.base, "err", err)
		}
		return nil, false
	}
	if code != http.StatusOK {
		s.counters.Error("ack_poll")
		var r hecResponse
		_ = json.Unmarshal(data, &r)
		if code == http.StatusBadRequest && r.Code == codeAckDisabled {
			s.log.Error("splunk_hec: indexer acknowledgement is disabled on the HEC token; enable it or set indexer_acknowledgement: false")
		} else {
			s.log.Warn("splunk_hec: ack poll refused", "status", code, "answer", snippet(data))
		}
		return nil, false
	}
	var ans ackAnswer
	if err := json.Unmarshal(data, &ans); err != nil {
		s.counters.Error("ack_poll")
		s.log.Warn("splunk_hec: unreadable ack answer", "answer", snippet(data))
		return nil, false
	}
	for k, v := range ans.Acks {
		if !v {
			continue
		}
		id, err := strconv.ParseUint(k, 10, 64)
		if err == nil {
			acked = append(acked, id)
		}
	}
	return acked, true
}
