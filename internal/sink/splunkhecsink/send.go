package splunkhecsink

import (
	"github.com/vigil-sec/vigil/internal/sink/docscan"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/component"
)

// maxResponse bounds an HEC answer read into memory; they are a few dozen bytes.
const maxResponse = 1 << 20

type sendKind int

const (
	sendOK      sendKind = iota // 200 "Success": accepted (ackID set with acks)
	sendRetry                   // transient failure of the whole request
	sendInvalid                 // 400 naming one event rejected for good
	sendSplit                   // 400/413 for the request without naming an event
	sendStopped                 // the sink is stopping
)

type sendResult struct {
	kind       sendKind
	ackID      uint64
	hasAck     bool
	invalid    int // the rejected event's index in the request, for sendInvalid
	retryAfter time.Duration
	reason     string
}

// hecResponse is HEC's documented answer: {"text":"Success","code":0,"ackId":7},
// or {"text":"Invalid data format","code":6,"invalid-event-number":3}.
type hecResponse struct {
	Text         string  `json:"text"`
	Code         int     `json:"code"`
	AckID        *uint64 `json:"ackId"`
	InvalidEvent *int    `json:"invalid-event-number"`
}

// HEC status codes the sink tells apart.
const (
	codeSuccess            = 0
	codeNoData             = 5
	codeInvalidDataFormat  = 6
	codeIncorrectIndex     = 7
	codeEventFieldRequired = 12
	codeEventFieldBlank    = 13
	codeAckDisabled        = 14
	codeIndexedFields      = 15
)

// run delivers groups of items of body until each is accepted (and, with acks,
// handed to the acker), dead-lettered, or given up at stop. Transient failures are
// retried with backoff; a request Splunk refuses for one event dead-letters that
// event and sends the others again. whole says body is exactly groups[0].
func (s *Sink) run(body []byte, groups [][]item, whole bool) {
	for attempt := 0; ; attempt++ {
		var retry []item
		var hint time.Duration
		for len(groups) > 0 {
			g := groups[0]
			groups = groups[1:]
			payload := body
			if !whole {
				payload = frame(body, g)
			}
			whole = false
			if s.cfg.IndexerAcknowledgement && !s.takePending() {
				s.giveUp(g, errStopped)
				for _, rest := range groups {
					s.giveUp(rest, errStopped)
				}
				s.giveUp(retry, errStopped)
				return
			}
			res := s.send(s.eventURL, payload, len(g))
			// An ackId when acks are off is ignored: the 200 is delivery then.
			if res.kind == sendOK && res.hasAck && s.cfg.IndexerAcknowledgement {
				// The pending slot now belongs to the acker's entry.
				s.acks.add(res.ackID, &pendingAck{body: body, items: g, sent: time.Now()})
				continue
			}
			if s.cfg.IndexerAcknowledgement {
				<-s.pendSem
			}
			switch res.kind {
			case sendOK:
				if s.cfg.IndexerAcknowledgement && s.ackMissing.CompareAndSwap(false, true) {
					// The token does not have acks on: a 200 is all Splunk will say.
					// Resending would duplicate forever, so the 200 counts.
					s.counters.Error("ack_missing")
					s.log.Error("splunk_hec: Splunk accepted events without an ackId: enable indexer acknowledgement on the HEC token, or set indexer_acknowledgement: false; counting accepted requests as delivered",
						"url", s.base)
				}
				s.delivered(g)
			case sendRetry:
				retry = append(retry, g...)
				hint = max(hint, res.retryAfter)
			case sendInvalid:
				k := res.invalid
				s.reject(body, g[k:k+1], res.reason)
				// Splunk may have taken the events before the bad one, but says so for
				// none of them (no ackId on an error): send them again with the rest,
				// at the risk of duplicates rather than loss.
				if rest := append(append([]item(nil), g[:k]...), g[k+1:]...); len(rest) > 0 {
					groups = append(groups, rest)
				}
			case sendSplit:
				if len(g) > 1 {
					groups = append(groups, g[:len(g)/2], g[len(g)/2:])
				} else {
					s.reject(body, g, res.reason)
				}
			case sendStopped:
				s.giveUp(g, errStopped)
				for _, rest := range groups {
					s.giveUp(rest, errStopped)
				}
				s.giveUp(retry, errStopped)
				return
			}
		}
		if len(retry) == 0 {
			return
		}
		s.counters.Retry()
		d := s.backoff(attempt, hint)
		s.log.Warn("splunk_hec: retrying events after a transient failure", "events", len(retry), "attempt", attempt+1, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.sendCtx.Done():
			t.Stop()
			s.giveUp(retry, errStopped)
			return
		}
		groups = [][]item{retry}
	}
}

// takePending waits for an ack.max_pending slot; false when the sink stops first.
func (s *Sink) takePending() bool {
	select {
	case s.pendSem <- struct{}{}:
		return true
	case <-s.sendCtx.Done():
		return false
	}
}

// backoff is exponential from retry.initial to retry.max with jitter (half the
// delay is random, so that many senders do not retry in step), and at least a
// server's Retry-After.
func (s *Sink) backoff(attempt int, hint time.Duration) time.Duration {
	d := s.cfg.Retry.Initial << min(attempt, 30)
	if d <= 0 || d > s.cfg.Retry.Max {
		d = s.cfg.Retry.Max
	}
	d = d/2 + rand.N(d/2+1)
	return min(max(d, hint), s.cfg.Retry.Max)
}

// frame builds a request body of some items of body.
func frame(body []byte, items []item) []byte {
	n := 0
	for _, it := range items {
		n += int(it.end - it.start)
	}
	out := make([]byte, 0, n)
	for _, it := range items {
		out = append(out, body[it.start:it.end]...)
	}
	return out
}

// compress gzips body when configured.
func (s *Sink) compress(body []byte) []byte {
	if s.cfg.Compression != "gzip" {
		return body
	}
	var buf bytes.Buffer
	buf.Grow(len(body)/4 + 64)
	zw, _ := s.gzips.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	} else {
		zw.Reset(&buf)
	}
	_, _ = zw.Write(body)
	_ = zw.Close()
	s.gzips.Put(zw)
	return buf.Bytes()
}

// post sends one request to HEC and reads the answer.
func (s *Sink) post(u string, body []byte) (int, http.Header, []byte, error) {
	payload := s.compress(body)
	req, err := http.NewRequestWithContext(s.sendCtx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", s.auth)
	req.Header.Set("X-Splunk-Request-Channel", s.channel)
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.Compression == "gzip" {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	s.counters.Request(strconv.Itoa(resp.StatusCode))
	return resp.StatusCode, resp.Header, data, err
}

// send posts one event request of events events and classifies the answer.
func (s *Sink) send(u string, body []byte, events int) sendResult {
	code, header, data, err := s.post(u, body)
	if err != nil {
		if s.sendCtx.Err() != nil {
			return sendResult{kind: sendStopped}
		}
		// The request may or may not have arrived; without an ackId it is not
		// confirmed, so it is sent again.
		s.counters.Error("connect")
		s.log.Warn("splunk_hec: request failed", "url", s.base, "err", err)
		return sendResult{kind: sendRetry, reason: err.Error()}
	}
	var r hecResponse
	jerr := json.Unmarshal(data, &r)
	reason := fmt.Sprintf("HTTP %d: %s", code, snippet(data))
	if jerr == nil && r.Text != "" {
		reason = fmt.Sprintf("%s (code %d, HTTP %d)", r.Text, r.Code, code)
	}
	switch {
	case code == http.StatusOK:
		if jerr != nil || r.Code != codeSuccess {
			s.counters.Error("bad_response")
			s.log.Warn("splunk_hec: unexpected answer to an event request; sending it again", "answer", snippet(data))
			return sendResult{kind: sendRetry, reason: reason}
		}
		if r.AckID != nil {
			return sendResult{kind: sendOK, hasAck: true, ackID: *r.AckID}
		}
		return sendResult{kind: sendOK}
	case code == http.StatusBadRequest && jerr == nil:
		switch r.Code {
		case codeInvalidDataFormat, codeIncorrectIndex, codeEventFieldRequired, codeEventFieldBlank, codeIndexedFields, codeNoData:
			s.counters.Error("hec_code_" + strconv.Itoa(r.Code))
			if r.InvalidEvent != nil && *r.InvalidEvent >= 0 && *r.InvalidEvent < events {
				return sendResult{kind: sendInvalid, invalid: *r.InvalidEvent, reason: reason}
			}
			return sendResult{kind: sendSplit, reason: reason}
		case codeAckDisabled:
			s.counters.Error("hec_code_14")
			s.log.Error("splunk_hec: indexer acknowledgement is disabled on the HEC token; enable it or set indexer_acknowledgement: false (retrying)")
			return sendResult{kind: sendRetry, reason: reason}
		default:
			// Channel and query-string problems (codes 10, 11, 16...): settings to
			// fix, not a reason to drop anything.
			s.counters.Error("hec_code_" + strconv.Itoa(r.Code))
			s.log.Error("splunk_hec: request refused (retrying)", "answer", reason)
			return sendResult{kind: sendRetry, reason: reason}
		}
	case code == http.StatusRequestEntityTooLarge:
		s.counters.Error("http_413")
		return sendResult{kind: sendSplit, reason: reason}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Error("splunk_hec: token refused; check token and that it is enabled (retrying)", "url", s.base, "answer", reason)
		return sendResult{kind: sendRetry, reason: reason}
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		// 503 code 9 "Server is busy" and the unhealthy codes: back off.
		s.counters.Error("http_" + strconv.Itoa(code))
		return sendResult{kind: sendRetry, retryAfter: retryAfter(header.Get("Retry-After")), reason: reason}
	default:
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Warn("splunk_hec: request failed (retrying)", "url", s.base, "answer", reason)
		return sendResult{kind: sendRetry, reason: reason}
	}
}

// retryAfter reads a Retry-After in seconds (0 when absent or a date).
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}

func snippet(b []byte) string {
	const n = 300
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// delivered counts and resolves items Splunk confirmed.
func (s *Sink) delivered(items []item) {
	if len(items) == 0 {
		return
	}
	n := 0
	for _, it := range items {
		n += int(it.docEnd - it.doc)
	}
	s.counters.Sent(len(items), n)
	s.resolveAll(items, nil)
}

var idPath = []string{"event.id"}

// reject dead-letters items Splunk refused for good, with its reason.
func (s *Sink) reject(body []byte, items []item, reason string) {
	now := time.Now()
	letters := make([]component.Letter, len(items))
	var v [1][]byte
	for i, it := range items {
		doc := body[it.doc:it.docEnd]
		l := component.Letter{Stage: "sink", Reason: "Splunk HEC rejected the event: " + reason,
			Dataset: it.tr.b.Dataset, Time: now, Original: doc}
		if docscan.Lookup(doc, idPath, v[:]) {
			if id, ok := docscan.StringValue(v[0]); ok && id != "" {
				// The same letter from a redelivery is then dropped as a duplicate.
				l.ID = "sink:" + s.name + ":" + id
			}
		}
		letters[i] = l
	}
	s.log.Warn("splunk_hec: events rejected, sending them to the dead-letter stream", "events", len(items), "reason", reason)
	err := errors.New("no dead-letter queue")
	if s.dead != nil {
		ctx, cancel := context.WithTimeout(s.sendCtx, 30*time.Second)
		err = s.dead(ctx, letters...)
		cancel()
	}
	if err != nil {
		s.counters.Error("dead_letter")
		s.log.Error("splunk_hec: cannot dead-letter rejected events; their batches will be redelivered", "events", len(items), "err", err)
		s.resolveAll(items, fmt.Errorf("splunk_hec: dead-lettering rejected events: %w", err))
		return
	}
	s.counters.DeadLettered("sink", len(items))
	s.resolveAll(items, nil)
}
