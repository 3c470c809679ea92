package elasticsearchsink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/sink/deliver"
	"github.com/vigil-sec/vigil/internal/sink/docscan"
)

// maxResponse bounds a bulk response read into memory (5000 items with long error
// reasons stay far below it).
const maxResponse = 256 << 20

// send is the delivery engine's Send: it posts one bulk body, trying the URLs in
// turn from the last one that worked, and reads the per-item outcomes. Deliveries
// wait for the index templates first, so that no index is created with dynamic
// mappings.
func (s *Sink) send(ctx context.Context, body []byte, r *deliver.Request) deliver.Result {
	select {
	case <-s.templates:
	case <-ctx.Done():
		return deliver.Result{Outcome: deliver.Stopped}
	}
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
	first := int(s.next.Load())
	for k := range s.urls {
		ui := (first + k) % len(s.urls)
		u := s.urls[ui]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(payload))
		if err != nil {
			continue
		}
		s.setHeaders(req.Header)
		req.Header.Set("Content-Type", "application/x-ndjson")
		if s.cfg.Compression == "gzip" {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := s.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return deliver.Result{Outcome: deliver.Stopped}
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
			if ctx.Err() != nil {
				return deliver.Result{Outcome: deliver.Stopped}
			}
			// The request may or may not have been applied: the resend overwrites by _id.
			s.counters.Error("connect")
			s.log.Warn("elasticsearch: reading the bulk response failed; trying the next URL", "url", u.Redacted(), "err", err)
			s.next.Store(uint32(ui + 1))
			continue
		}
		switch {
		case code >= 200 && code < 300:
			return s.settle(data, r.Len())
		case code == http.StatusTooManyRequests:
			// The cluster is throttling as a whole: another node would not help.
			s.counters.Error("http_429")
			return deliver.Result{Outcome: deliver.Retry, RetryAfter: deliver.RetryAfter(resp.Header.Get("Retry-After"))}
		case code >= 500:
			s.counters.Error("http_5xx")
			s.log.Warn("elasticsearch: bulk request failed; trying the next URL", "url", u.Redacted(), "status", code, "body", snippet(data))
			s.next.Store(uint32(ui + 1))
			continue
		case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge:
			// A body the cluster refuses as a whole: halve it until the document that
			// causes it is alone, then dead-letter that one.
			s.counters.Error("http_" + strconv.Itoa(code))
			return deliver.Result{Outcome: deliver.Split,
				Reason: fmt.Sprintf("%s rejected the document: HTTP %d from %s: %s", s.flavour, code, u.Redacted(), snippet(data))}
		default:
			// 401, 403, 404...: a setting to fix, not a reason to drop anything.
			s.counters.Error("http_" + strconv.Itoa(code))
			s.log.Error("elasticsearch: bulk request refused; check urls, auth and privileges (retrying)", "url", u.Redacted(), "status", code, "body", snippet(data))
			return deliver.Result{Outcome: deliver.Retry}
		}
	}
	return deliver.Result{Outcome: deliver.Retry}
}

func (s *Sink) setHeaders(h http.Header) {
	for k, v := range s.cfg.Headers {
		h.Set(k, v)
	}
	if s.auth != "" {
		h.Set("Authorization", s.auth)
	}
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

// settle reads a 2xx bulk response to a request of n items into their outcomes.
func (s *Sink) settle(resp []byte, n int) deliver.Result {
	var v [1][]byte
	if docscan.Lookup(resp, errorsPath, v[:]) && string(v[0]) == "false" {
		// Every action succeeded: no need to read the items.
		return deliver.Result{Outcome: deliver.Delivered}
	}
	var r bulkResponse
	if err := json.Unmarshal(resp, &r); err != nil || len(r.Items) != n {
		// Without a per-item answer we cannot tell what was applied; resending all
		// of them is safe because _id makes it an overwrite.
		s.counters.Error("bulk_response")
		s.log.Error("elasticsearch: unreadable bulk response; resending its documents", "items_sent", n,
			"items_answered", len(r.Items), "err", err, "body", snippet(resp))
		return deliver.Result{Outcome: deliver.Retry}
	}
	outs := make([]deliver.DocOutcome, n)
	for i, entry := range r.Items {
		var res bulkItem
		for _, res = range entry {
			break
		}
		st := res.Status
		switch {
		case st >= 200 && st < 300:
			outs[i].Outcome = deliver.Delivered
		case st == http.StatusConflict && s.cfg.OpType == "create":
			// The document is there from an earlier attempt: delivered.
			outs[i].Outcome = deliver.Duplicate
		case st == http.StatusTooManyRequests:
			s.counters.Error("item_429")
			outs[i].Outcome = deliver.Retry
		case st >= 500 || st == http.StatusRequestTimeout || st == http.StatusConflict ||
			st == http.StatusUnauthorized || st == http.StatusForbidden:
			s.counters.Error("item_" + strconv.Itoa(st))
			outs[i].Outcome = deliver.Retry
		default:
			outs[i] = deliver.DocOutcome{Outcome: deliver.DeadLetter,
				Reason: fmt.Sprintf("%s rejected the document: %d %s", s.flavour, st, res.Error)}
		}
	}
	return deliver.Result{Docs: outs}
}
