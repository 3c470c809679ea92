package splunkhecsink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/sink/deliver"
)

// maxResponse bounds an HEC answer read into memory; they are a few dozen bytes.
const maxResponse = 1 << 20

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

// send is the delivery engine's Send: one event request. With indexer
// acknowledgement it first takes an ack.max_pending slot, and a request Splunk
// accepts with an ackId is held, with its slot, by the acker until Splunk reports
// it indexed (or its ack is lost and it is sent again).
func (s *Sink) send(ctx context.Context, body []byte, r *deliver.Request) deliver.Result {
	acks := s.cfg.IndexerAcknowledgement
	if acks {
		select {
		case s.pendSem <- struct{}{}:
		case <-ctx.Done():
			return deliver.Result{Outcome: deliver.Stopped}
		}
	}
	res, ackID := s.classify(ctx, s.eventURL, body, r.Len())
	// An ackId when acks are off is ignored: the 200 is delivery then.
	if res.Outcome == deliver.Delivered && ackID != nil && acks {
		// The pending slot now belongs to the acker's entry.
		s.acks.add(*ackID, &pendingAck{req: r, sent: time.Now()})
		return deliver.Result{Outcome: deliver.Held}
	}
	if acks {
		<-s.pendSem
	}
	if res.Outcome == deliver.Delivered && acks && s.ackMissing.CompareAndSwap(false, true) {
		// The token does not have acks on: a 200 is all Splunk will say. Resending
		// would duplicate forever, so the 200 counts.
		s.counters.Error("ack_missing")
		s.log.Error("splunk_hec: Splunk accepted events without an ackId: enable indexer acknowledgement on the HEC token, or set indexer_acknowledgement: false; counting accepted requests as delivered",
			"url", s.base)
	}
	return res
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
func (s *Sink) post(ctx context.Context, u string, body []byte) (int, http.Header, []byte, error) {
	payload := s.compress(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
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

// classify posts one event request of events events and reads the answer, with
// the ackId Splunk gave an accepted request.
func (s *Sink) classify(ctx context.Context, u string, body []byte, events int) (deliver.Result, *uint64) {
	retry := deliver.Result{Outcome: deliver.Retry}
	code, header, data, err := s.post(ctx, u, body)
	if err != nil {
		if ctx.Err() != nil {
			return deliver.Result{Outcome: deliver.Stopped}, nil
		}
		// The request may or may not have arrived; without an ackId it is not
		// confirmed, so it is sent again.
		s.counters.Error("connect")
		s.log.Warn("splunk_hec: request failed", "url", s.base, "err", err)
		return retry, nil
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
			return retry, nil
		}
		return deliver.Result{Outcome: deliver.Delivered}, r.AckID
	case code == http.StatusBadRequest && jerr == nil:
		switch r.Code {
		case codeInvalidDataFormat, codeIncorrectIndex, codeEventFieldRequired, codeEventFieldBlank, codeIndexedFields, codeNoData:
			s.counters.Error("hec_code_" + strconv.Itoa(r.Code))
			reason = "Splunk HEC rejected the event: " + reason
			if k := r.InvalidEvent; k != nil && *k >= 0 && *k < events {
				// Splunk may have taken the events before the bad one, but says so for
				// none of them (no ackId on an error): send them again with the rest,
				// at the risk of duplicates rather than loss.
				outs := make([]deliver.DocOutcome, events)
				for i := range outs {
					outs[i].Outcome = deliver.Resend
				}
				outs[*k] = deliver.DocOutcome{Outcome: deliver.DeadLetter, Reason: reason}
				return deliver.Result{Docs: outs}, nil
			}
			return deliver.Result{Outcome: deliver.Split, Reason: reason}, nil
		case codeAckDisabled:
			s.counters.Error("hec_code_14")
			s.log.Error("splunk_hec: indexer acknowledgement is disabled on the HEC token; enable it or set indexer_acknowledgement: false (retrying)")
			return retry, nil
		default:
			// Channel and query-string problems (codes 10, 11, 16...): settings to
			// fix, not a reason to drop anything.
			s.counters.Error("hec_code_" + strconv.Itoa(r.Code))
			s.log.Error("splunk_hec: request refused (retrying)", "answer", reason)
			return retry, nil
		}
	case code == http.StatusRequestEntityTooLarge:
		s.counters.Error("http_413")
		return deliver.Result{Outcome: deliver.Split, Reason: "Splunk HEC rejected the event: " + reason}, nil
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Error("splunk_hec: token refused; check token and that it is enabled (retrying)", "url", s.base, "answer", reason)
		return retry, nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		// 503 code 9 "Server is busy" and the unhealthy codes: back off.
		s.counters.Error("http_" + strconv.Itoa(code))
		return deliver.Result{Outcome: deliver.Retry, RetryAfter: deliver.RetryAfter(header.Get("Retry-After"))}, nil
	default:
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Warn("splunk_hec: request failed (retrying)", "url", s.base, "answer", reason)
		return retry, nil
	}
}

func snippet(b []byte) string {
	const n = 300
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
