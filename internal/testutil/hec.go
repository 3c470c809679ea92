package testutil

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// HEC is a Splunk HTTP Event Collector on loopback for end-to-end tests (there is
// no Splunk here). It follows Splunk's documented protocol ("Format events for HTTP
// Event Collector", "About HTTP Event Collector Indexer Acknowledgment"):
//
//   - POST /services/collector/event with "Authorization: Splunk <token>", a body
//     of concatenated event objects ({"time", "host", "source", "sourcetype",
//     "index", "event", "fields"}), gzip when Content-Encoding says so;
//   - with indexer acknowledgement, each request names a channel in
//     X-Splunk-Request-Channel (or ?channel=) and the answer carries an ackId,
//     {"text":"Success","code":0,"ackId":N}; without a channel the answer is 400
//     code 10 "Data channel is missing";
//   - POST /services/collector/ack?channel=<c> with {"acks":[N,…]} answers
//     {"acks":{"N":true|false}}: true once the request's events are indexed (here:
//     at the first poll), after which the ackId is forgotten;
//   - a wrong token answers 403 code 4 "Invalid token", a bad body 400 code 6
//     "Invalid data format" with invalid-event-number.
//
// Events count as indexed when their ack turns true (with acknowledgement) or at
// the 200 answer (without).
type HEC struct {
	srv   *httptest.Server
	token string
	ack   bool

	mu      sync.Mutex
	indexed []map[string]any // the "event" member of each indexed event object
	nextAck map[string]uint64
	pending map[string]map[uint64][]map[string]any
}

// StartHEC starts an HEC that accepts token; ack turns indexer acknowledgement on.
// It stops when the test ends.
func StartHEC(t testing.TB, token string, ack bool) *HEC {
	t.Helper()
	h := &HEC{token: token, ack: ack, nextAck: map[string]uint64{}, pending: map[string]map[uint64][]map[string]any{}}
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

// URL is the collector's base URL (the sink appends /services/collector/…).
func (h *HEC) URL() string { return h.srv.URL }

// Events returns the indexed events' "event" members (ECS documents, for Vigil).
func (h *HEC) Events() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.indexed...)
}

func hecAnswer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// ServeHTTP implements http.Handler.
func (h *HEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		hecAnswer(w, http.StatusMethodNotAllowed, `{"text":"Method not allowed","code":8}`)
		return
	}
	if r.Header.Get("Authorization") != "Splunk "+h.token {
		hecAnswer(w, http.StatusForbidden, `{"text":"Invalid token","code":4}`)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			hecAnswer(w, http.StatusBadRequest, `{"text":"Invalid data format","code":6,"invalid-event-number":0}`)
			return
		}
		body = zr
	}
	channel := r.Header.Get("X-Splunk-Request-Channel")
	if channel == "" {
		channel = r.URL.Query().Get("channel")
	}
	switch r.URL.Path {
	case "/services/collector/event", "/services/collector", "/services/collector/event/1.0":
		var events []map[string]any
		dec := json.NewDecoder(body)
		for {
			var obj struct {
				Event map[string]any `json:"event"`
			}
			err := dec.Decode(&obj)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || obj.Event == nil {
				hecAnswer(w, http.StatusBadRequest, fmt.Sprintf(`{"text":"Invalid data format","code":6,"invalid-event-number":%d}`, len(events)))
				return
			}
			events = append(events, obj.Event)
		}
		if len(events) == 0 {
			hecAnswer(w, http.StatusBadRequest, `{"text":"No data","code":5}`)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.ack {
			h.indexed = append(h.indexed, events...)
			hecAnswer(w, http.StatusOK, `{"text":"Success","code":0}`)
			return
		}
		if channel == "" {
			hecAnswer(w, http.StatusBadRequest, `{"text":"Data channel is missing","code":10}`)
			return
		}
		id := h.nextAck[channel]
		h.nextAck[channel] = id + 1
		if h.pending[channel] == nil {
			h.pending[channel] = map[uint64][]map[string]any{}
		}
		h.pending[channel][id] = events
		hecAnswer(w, http.StatusOK, fmt.Sprintf(`{"text":"Success","code":0,"ackId":%d}`, id))
	case "/services/collector/ack":
		if !h.ack {
			hecAnswer(w, http.StatusBadRequest, `{"text":"ACK is disabled","code":14}`)
			return
		}
		if channel == "" {
			hecAnswer(w, http.StatusBadRequest, `{"text":"Data channel is missing","code":10}`)
			return
		}
		var q struct {
			Acks []uint64 `json:"acks"`
		}
		if err := json.NewDecoder(body).Decode(&q); err != nil {
			hecAnswer(w, http.StatusBadRequest, `{"text":"Invalid data format","code":6}`)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		out := map[string]bool{}
		for _, id := range q.Acks {
			evs, ok := h.pending[channel][id]
			if ok {
				h.indexed = append(h.indexed, evs...)
				delete(h.pending[channel], id)
			}
			out[strconv.FormatUint(id, 10)] = ok
		}
		b, _ := json.Marshal(map[string]any{"acks": out})
		hecAnswer(w, http.StatusOK, string(b))
	default:
		hecAnswer(w, http.StatusNotFound, `{"text":"The requested URL was not found on this server.","code":404}`)
	}
}
