package splunkhecsink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// fakeHEC is a Splunk HTTP Event Collector that follows Splunk's documented
// protocol: POST /services/collector/event with "Authorization: Splunk <token>"
// and, with indexer acknowledgement, "X-Splunk-Request-Channel: <uuid>"; a body of
// concatenated event objects; answers {"text":"Success","code":0,"ackId":N} or
// {"text":...,"code":N,"invalid-event-number":K}; POST
// /services/collector/ack?channel=<uuid> with {"acks":[N...]} answering
// {"acks":{"N":true|false}}, an ackId being forgotten once reported true.
//
// Knobs simulate what a real Splunk does under trouble: busy answers (503 code 9),
// held acks (indexing delayed), lost acks (never true), per-event rejections.
type fakeHEC struct {
	srv   *httptest.Server
	token string
	ack   bool // the token has indexer acknowledgement enabled

	mu       sync.Mutex
	stored   []hecEvent
	requests []request // every event request, in order
	ackPolls int
	nextAck  map[string]uint64 // per channel
	acks     map[string]map[uint64]*ackState
	// busy answers the next n event requests 503 code 9.
	busy int
	// holdAcks keeps every ack false (indexing is slow) until cleared.
	holdAcks bool
	// loseAcks makes the acks of the next n accepted requests never come; with
	// lostIndexed their events are stored anyway (the ack alone was lost), else not
	// (the indexer lost them).
	loseAcks    int
	lostIndexed bool
	// reject answers 400 with this code for the first event it returns true for.
	reject func(ev hecEvent) (code int, text string, bad bool)
	// allowedIndexes, when set, answers 400 code 7 for any other index.
	allowedIndexes map[string]bool
}

type request struct {
	at      time.Time
	auth    string
	channel string
	gzip    bool
	events  int
	status  int
}

type ackState struct {
	events []hecEvent
	lost   bool
}

// hecEvent is one event object as received.
type hecEvent struct {
	Time       json.Number     `json:"time"`
	Host       *string         `json:"host"`
	Source     string          `json:"source"`
	Sourcetype string          `json:"sourcetype"`
	Index      string          `json:"index"`
	Event      json.RawMessage `json:"event"`
	Fields     json.RawMessage `json:"fields"`
}

func newFakeHEC(token string, ack bool) *fakeHEC {
	f := &fakeHEC{token: token, ack: ack, nextAck: map[string]uint64{}, acks: map[string]map[uint64]*ackState{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/collector/event", f.event)
	mux.HandleFunc("POST /services/collector/ack", f.ackQuery)
	f.srv = httptest.NewServer(mux)
	return f
}

func (f *fakeHEC) close() { f.srv.Close() }

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func hecErr(w http.ResponseWriter, status, code int, text string) {
	answer(w, status, map[string]any{"text": text, "code": code})
}

// auth checks the token as Splunk does: 401 code 2 without one, 403 code 4 for a
// wrong one.
func (f *fakeHEC) auth(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Splunk ")
	f.mu.Lock()
	want := f.token
	f.mu.Unlock()
	switch {
	case !ok || tok == "":
		hecErr(w, http.StatusUnauthorized, 2, "Token is required")
		return false
	case tok != want:
		hecErr(w, http.StatusForbidden, 4, "Invalid token")
		return false
	}
	return true
}

func (f *fakeHEC) body(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = zr
	}
	return io.ReadAll(rd)
}

func (f *fakeHEC) event(w http.ResponseWriter, r *http.Request) {
	req := request{at: time.Now(), auth: r.Header.Get("Authorization"), channel: r.Header.Get("X-Splunk-Request-Channel"),
		gzip: r.Header.Get("Content-Encoding") == "gzip"}
	status := 0
	defer func() {
		req.status = status
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.mu.Unlock()
	}()
	if !f.auth(w, r) {
		status = 401
		return
	}
	f.mu.Lock()
	if f.busy > 0 {
		f.busy--
		f.mu.Unlock()
		status = 503
		hecErr(w, http.StatusServiceUnavailable, 9, "Server is busy")
		return
	}
	f.mu.Unlock()
	if f.ack && req.channel == "" {
		status = 400
		hecErr(w, http.StatusBadRequest, 10, "Data channel is missing")
		return
	}
	data, err := f.body(r)
	if err != nil {
		status = 400
		hecErr(w, http.StatusBadRequest, 6, "Invalid data format")
		return
	}
	var events []hecEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for i := 0; ; i++ {
		var ev hecEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			status = 400
			answer(w, http.StatusBadRequest, map[string]any{"text": "Invalid data format", "code": 6, "invalid-event-number": i})
			return
		}
		switch {
		case len(ev.Event) == 0 || string(ev.Event) == "null":
			status = 400
			answer(w, http.StatusBadRequest, map[string]any{"text": "Event field is required", "code": 12, "invalid-event-number": i})
			return
		case f.allowedIndexes != nil && ev.Index != "" && !f.allowedIndexes[ev.Index]:
			status = 400
			answer(w, http.StatusBadRequest, map[string]any{"text": "Incorrect index", "code": 7, "invalid-event-number": i})
			return
		}
		if f.reject != nil {
			if code, text, bad := f.reject(ev); bad {
				status = 400
				answer(w, http.StatusBadRequest, map[string]any{"text": text, "code": code, "invalid-event-number": i})
				return
			}
		}
		events = append(events, ev)
	}
	req.events = len(events)
	if len(events) == 0 {
		status = 400
		hecErr(w, http.StatusBadRequest, 5, "No data")
		return
	}
	status = 200
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ack {
		f.stored = append(f.stored, events...)
		answer(w, http.StatusOK, map[string]any{"text": "Success", "code": 0})
		return
	}
	id := f.nextAck[req.channel]
	f.nextAck[req.channel] = id + 1
	st := &ackState{events: events}
	if f.loseAcks > 0 {
		f.loseAcks--
		st.lost = true
		if f.lostIndexed {
			f.stored = append(f.stored, events...)
		}
	}
	if f.acks[req.channel] == nil {
		f.acks[req.channel] = map[uint64]*ackState{}
	}
	f.acks[req.channel][id] = st
	answer(w, http.StatusOK, map[string]any{"text": "Success", "code": 0, "ackId": id})
}

func (f *fakeHEC) ackQuery(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	if !f.ack {
		hecErr(w, http.StatusBadRequest, 14, "ACK is disabled")
		return
	}
	channel := r.URL.Query().Get("channel")
	if channel == "" {
		channel = r.Header.Get("X-Splunk-Request-Channel")
	}
	if channel == "" {
		hecErr(w, http.StatusBadRequest, 10, "Data channel is missing")
		return
	}
	data, err := f.body(r)
	var q struct {
		Acks []uint64 `json:"acks"`
	}
	if err != nil || json.Unmarshal(data, &q) != nil {
		hecErr(w, http.StatusBadRequest, 6, "Invalid data format")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ackPolls++
	out := map[string]bool{}
	for _, id := range q.Acks {
		st := f.acks[channel][id]
		ok := st != nil && !st.lost && !f.holdAcks
		if ok {
			// Indexed: visible now, and the ackId is forgotten once reported.
			f.stored = append(f.stored, st.events...)
			delete(f.acks[channel], id)
		}
		out[strconv.FormatUint(id, 10)] = ok
	}
	answer(w, http.StatusOK, map[string]any{"acks": out})
}

func (f *fakeHEC) set(fn func(f *fakeHEC)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeHEC) events() []hecEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hecEvent(nil), f.stored...)
}

func (f *fakeHEC) reqs() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

func (f *fakeHEC) polls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ackPolls
}

// pendingAcks is the number of accepted requests whose ack has not been reported.
func (f *fakeHEC) pendingAcks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.acks {
		n += len(m)
	}
	return n
}

// countBy counts stored events by the value of a top-level field of the event.
func countBy(events []hecEvent, field string) map[string]int {
	out := map[string]int{}
	for _, ev := range events {
		var m map[string]any
		_ = json.Unmarshal(ev.Event, &m)
		out[fmt.Sprint(m[field])]++
	}
	return out
}
