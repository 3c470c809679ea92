package elasticsearchsink

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

// maxResponse bounds a bulk response read into memory (5000 items with long error
// reasons stay far below it).
const maxResponse = 256 << 20

type sendKind int

const (
	sendOK      sendKind = iota // 2xx: per-item outcomes in body
	sendRetry                   // the whole request failed transiently
	sendSplit                   // 400/413 for the whole request: isolate the culprit
	sendStopped                 // the sink is stopping
)

type sendResult struct {
	kind       sendKind
	body       []byte
	retryAfter time.Duration
	reason     string
}

// run delivers one job: items that fail transiently are resent alone with backoff
// until they resolve or the sink stops.
func (s *Sink) run(j *job) {
	select {
	case <-s.templates:
	case <-s.sendCtx.Done():
		s.giveUp(j.items, errStopped)
		return
	}
	groups := [][]item{j.items}
	whole := true // the first request is j.body as framed
	for attempt := 0; ; attempt++ {
		var retry []item
		var hint time.Duration
		for len(groups) > 0 {
			g := groups[0]
			groups = groups[1:]
			body := j.body
			if !whole {
				body = frame(j.body, g)
			}
			whole = false
			res := s.send(body)
			switch res.kind {
			case sendOK:
				retry = append(retry, s.settle(j.body, g, res.body)...)
			case sendRetry:
				retry = append(retry, g...)
				hint = max(hint, res.retryAfter)
			case sendSplit:
				if len(g) > 1 {
					groups = append(groups, g[:len(g)/2], g[len(g)/2:])
				} else {
					s.reject(j.body, g, []string{res.reason})
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
		s.log.Warn("elasticsearch: retrying documents after transient failures", "documents", len(retry), "attempt", attempt+1, "in", d.Round(time.Millisecond))
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

// backoff is exponential from retry.initial to retry.max with jitter (half the
// delay is random, so that sinks on many nodes do not retry in step), and at least
// a server's Retry-After.
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

// send posts one bulk body, trying the URLs in turn from the last one that worked.
func (s *Sink) send(body []byte) sendResult {
	payload := body
	if s.cfg.Compression == "gzip" {
		var buf bytes.Buffer
		buf.Grow(len(body) / 4)
		zw, _ := s.gzips.Get().(*gzip.Writer)
		if zw == nil {
			zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		} else {
			zw.Reset(&buf)
		}
		_, _ = zw.Write(body)
		_ = zw.Close()
		s.gzips.Put(zw)
		payload = buf.Bytes()
	}
	res := sendResult{kind: sendRetry}
	first := int(s.next.Load())
	for k := range s.urls {
		ui := (first + k) % len(s.urls)
		u := s.urls[ui]
		req, err := http.NewRequestWithContext(s.sendCtx, http.MethodPost, u.String(), bytes.NewReader(payload))
		if err != nil {
			res.reason = err.Error()
			continue
		}
		s.setHeaders(req.Header)
		req.Header.Set("Content-Type", "application/x-ndjson")
		if s.cfg.Compression == "gzip" {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := s.client.Do(req)
		if err != nil {
			if s.sendCtx.Err() != nil {
				return sendResult{kind: sendStopped}
			}
			s.counters.Error("connect")
			s.log.Warn("elasticsearch: bulk request failed; trying the next URL", "url", u.Redacted(), "err", err)
			s.next.Store(uint32(ui + 1))
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		code := resp.StatusCode
		s.counters.Request(strconv.Itoa(code))
		if err != nil {
			if s.sendCtx.Err() != nil {
				return sendResult{kind: sendStopped}
			}
			// The request may or may not have been applied: the resend overwrites by _id.
			s.counters.Error("connect")
			s.log.Warn("elasticsearch: reading the bulk response failed; trying the next URL", "url", u.Redacted(), "err", err)
			s.next.Store(uint32(ui + 1))
			continue
		}
		reason := fmt.Sprintf("HTTP %d from %s: %s", code, u.Redacted(), snippet(data))
		switch {
		case code >= 200 && code < 300:
			return sendResult{kind: sendOK, body: data}
		case code == http.StatusTooManyRequests:
			// The cluster is throttling as a whole: another node would not help.
			s.counters.Error("http_429")
			return sendResult{kind: sendRetry, retryAfter: retryAfter(resp.Header.Get("Retry-After")), reason: reason}
		case code >= 500:
			s.counters.Error("http_5xx")
			s.log.Warn("elasticsearch: bulk request failed; trying the next URL", "url", u.Redacted(), "status", code, "body", snippet(data))
			s.next.Store(uint32(ui + 1))
			res.reason = reason
			continue
		case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge:
			// A body the cluster refuses as a whole: halve it until the document that
			// causes it is alone, then dead-letter that one.
			s.counters.Error("http_" + strconv.Itoa(code))
			return sendResult{kind: sendSplit, reason: reason}
		default:
			// 401, 403, 404...: a setting to fix, not a reason to drop anything.
			s.counters.Error("http_" + strconv.Itoa(code))
			s.log.Error("elasticsearch: bulk request refused; check urls, auth and privileges (retrying)", "url", u.Redacted(), "status", code, "body", snippet(data))
			return sendResult{kind: sendRetry, reason: reason}
		}
	}
	return res
}

func (s *Sink) setHeaders(h http.Header) {
	for k, v := range s.cfg.Headers {
		h.Set(k, v)
	}
	if s.auth != "" {
		h.Set("Authorization", s.auth)
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

// bulkResponse is the documented bulk API answer: one entry per action, in order,
// keyed by the action ("index", "create").
type bulkResponse struct {
	Errors bool                  `json:"errors"`
	Items  []map[string]bulkItem `json:"items"`
}

type bulkItem struct {
	Index  string     `json:"_index"`
	ID     string     `json:"_id"`
	Status int        `json:"status"`
	Error  *bulkError `json:"error"`
}

type bulkError struct {
	Type     string     `json:"type"`
	Reason   string     `json:"reason"`
	CausedBy *bulkError `json:"caused_by"`
}

func (e *bulkError) String() string {
	if e == nil {
		return "no error detail"
	}
	out := e.Type + ": " + e.Reason
	if e.CausedBy != nil && e.CausedBy.Type != "" {
		out += " (caused by " + e.CausedBy.Type + ": " + e.CausedBy.Reason + ")"
	}
	return out
}

var errorsPath = []string{"errors"}

// settle applies a 2xx bulk response to the items sent and returns those to retry.
func (s *Sink) settle(body []byte, items []item, resp []byte) []item {
	var v [1][]byte
	if docscan.Lookup(resp, errorsPath, v[:]) && string(v[0]) == "false" {
		// Every action succeeded: no need to read the items.
		s.delivered(body, items)
		return nil
	}
	var r bulkResponse
	if err := json.Unmarshal(resp, &r); err != nil || len(r.Items) != len(items) {
		// Without a per-item answer we cannot tell what was applied; resending all
		// of them is safe because _id makes it an overwrite.
		s.counters.Error("bulk_response")
		s.log.Error("elasticsearch: unreadable bulk response; resending its documents", "items_sent", len(items),
			"items_answered", len(r.Items), "err", err, "body", snippet(resp))
		return items
	}
	var ok, dup, retry, bad []item
	var reasons []string
	for i, entry := range r.Items {
		var res bulkItem
		for _, res = range entry {
			break
		}
		st := res.Status
		switch {
		case st >= 200 && st < 300:
			ok = append(ok, items[i])
		case st == http.StatusConflict && s.cfg.OpType == "create":
			// The document is there from an earlier attempt: delivered.
			dup = append(dup, items[i])
		case st == http.StatusTooManyRequests:
			s.counters.Error("item_429")
			retry = append(retry, items[i])
		case st >= 500 || st == http.StatusRequestTimeout || st == http.StatusConflict ||
			st == http.StatusUnauthorized || st == http.StatusForbidden:
			s.counters.Error("item_" + strconv.Itoa(st))
			retry = append(retry, items[i])
		default:
			bad = append(bad, items[i])
			reasons = append(reasons, fmt.Sprintf("%d %s", st, res.Error))
		}
	}
	s.delivered(body, ok)
	if len(dup) > 0 {
		s.counters.Discarded("already_indexed", len(dup))
		resolveAll(dup, nil)
	}
	if len(bad) > 0 {
		s.reject(body, bad, reasons)
	}
	return retry
}

// delivered counts and resolves items the cluster stored.
func (s *Sink) delivered(body []byte, items []item) {
	if len(items) == 0 {
		return
	}
	n := 0
	for _, it := range items {
		n += int(it.end - it.doc - 1)
	}
	s.counters.Sent(len(items), n)
	resolveAll(items, nil)
}

// resolveAll resolves items, once per run of the same batch.
func resolveAll(items []item, err error) {
	for i := 0; i < len(items); {
		k := i + 1
		for k < len(items) && items[k].tr == items[i].tr {
			k++
		}
		items[i].tr.resolve(k-i, err)
		i = k
	}
}

// reject dead-letters items the cluster refused for good, with the reason of each
// (one reason for all when reasons has a single entry).
func (s *Sink) reject(body []byte, items []item, reasons []string) {
	now := time.Now()
	letters := make([]component.Letter, len(items))
	for i, it := range items {
		reason := reasons[0]
		if len(reasons) == len(items) {
			reason = reasons[i]
		}
		l := component.Letter{Stage: "sink", Reason: s.flavour + " rejected the document: " + reason,
			Dataset: it.tr.b.Dataset, Time: now, Original: body[it.doc : it.end-1]}
		if it.id1 > it.id0 {
			if id, ok := docscan.StringValue(body[it.id0:it.id1]); ok {
				// The same letter from a redelivery is then dropped as a duplicate.
				l.ID = "sink:" + s.name + ":" + id
			}
		}
		letters[i] = l
	}
	s.log.Warn("elasticsearch: documents rejected, sending them to the dead-letter stream", "documents", len(items), "first_reason", letters[0].Reason)
	err := errors.New("no dead-letter queue")
	if s.dead != nil {
		ctx, cancel := context.WithTimeout(s.sendCtx, 30*time.Second)
		err = s.dead(ctx, letters...)
		cancel()
	}
	if err != nil {
		s.counters.Error("dead_letter")
		s.log.Error("elasticsearch: cannot dead-letter rejected documents; their batches will be redelivered", "documents", len(items), "err", err)
		resolveAll(items, fmt.Errorf("elasticsearch: dead-lettering rejected documents: %w", err))
		return
	}
	s.counters.DeadLettered("sink", len(items))
	resolveAll(items, nil)
}
