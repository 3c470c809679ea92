package hecsource

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/source/httpserver"
)

// HeaderChannel carries the channel of indexer acknowledgement.
const HeaderChannel = "X-Splunk-Request-Channel"

// maxAckQuery bounds the ids of one acknowledgement query.
const maxAckQuery = 10000

// Source is the hec source.
type Source struct {
	cfg      Config
	name     string
	intake   component.Intake
	log      *slog.Logger
	counters *component.Counters
	tokens   [][sha256.Size]byte
	dec      decoder
	acks     *acks
	slots    chan struct{}

	listener httpserver.Listener
}

var _ component.Source = (*Source)(nil)

// New returns a hec source.
func New(cfg *Config, deps component.SourceDeps) *Source {
	s := &Source{cfg: *cfg, name: deps.Name, intake: deps.Intake, log: deps.Log,
		counters: deps.Metrics.For("source", deps.Name),
		acks:     newAcks(max(cfg.MaxChannels, 1), cfg.ChannelIdleTimeout, time.Now),
		slots:    make(chan struct{}, max(cfg.MaxInFlight, 1))}
	for _, t := range cfg.Tokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	if len(cfg.AllowedIndexes) > 0 {
		s.dec.allowed = map[string]bool{}
		for _, ix := range cfg.AllowedIndexes {
			s.dec.allowed[ix] = true
		}
	}
	return s
}

// Describe implements component.Source.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s on %s://%s/services/collector (Splunk HEC)", s.name, s.cfg.Scheme(), s.Addr())
}

// Addr is the address the source listens on (the real port when configured with 0).
func (s *Source) Addr() string { return s.listener.Addr(s.cfg.Address) }

// Ready implements component.Source.
func (s *Source) Ready() bool { return s.listener.Ready() }

// Start implements component.Source.
func (s *Source) Start(context.Context) error {
	mux := http.NewServeMux()
	for _, p := range []string{"/services/collector", "/services/collector/event", "/services/collector/event/1.0"} {
		mux.HandleFunc("POST "+p, s.handleEvents)
	}
	for _, p := range []string{"/services/collector/raw", "/services/collector/raw/1.0"} {
		mux.HandleFunc("POST "+p, s.handleRaw)
	}
	for _, p := range []string{"/services/collector/health", "/services/collector/health/1.0"} {
		mux.HandleFunc("GET "+p, s.handleHealth)
	}
	mux.HandleFunc("POST /services/collector/ack", s.handleAck)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.counters.Error("unknown_path")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"text":"The requested URL was not found on this server.","code":404}`)
		s.counters.Request("404")
	})
	return s.listener.Start(httpserver.ListenerConfig{What: "hec source " + s.name, Server: s.cfg.Config,
		Log: s.log, Counters: s.counters}, mux)
}

// Stop implements component.Source: new requests get 503 code 9, requests in flight
// finish with their true outcome.
func (s *Source) Stop(ctx context.Context) error {
	return s.listener.Stop(ctx)
}

// answer is Splunk's answer body.
type answer struct {
	Text               string  `json:"text"`
	Code               int     `json:"code"`
	InvalidEventNumber *int    `json:"invalid-event-number,omitempty"`
	AckID              *uint64 `json:"ackId,omitempty"`
}

// httpStatus is the HTTP status Splunk answers with each code.
func httpStatus(code int) int {
	switch code {
	case codeSuccess, codeHealthy:
		return http.StatusOK
	case codeTokenRequired, codeInvalidAuth:
		return http.StatusUnauthorized
	case codeInvalidToken:
		return http.StatusForbidden
	case codeServerBusy, codeUnhealthyQueueFull:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func (s *Source) reply(w http.ResponseWriter, status int, a answer) {
	body, _ := json.Marshal(a)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	s.counters.Request(strconv.Itoa(status))
}

// fail answers a Splunk error code and counts it under reason.
func (s *Source) fail(w http.ResponseWriter, code int, reason string) {
	s.counters.Error(reason)
	if code == codeServerBusy {
		w.Header().Set("Retry-After", s.cfg.RetryAfterSeconds())
	}
	s.reply(w, httpStatus(code), answer{Text: codeText[code], Code: code})
}

// failEvent answers a bad event of a request.
func (s *Source) failEvent(w http.ResponseWriter, err error) {
	var ee *eventError
	if !errors.As(err, &ee) {
		s.fail(w, codeInvalidDataFormat, "malformed")
		return
	}
	reason := map[int]string{codeNoData: "no_data", codeIncorrectIndex: "incorrect_index",
		codeEventRequired: "event_required", codeEventBlank: "event_blank",
		codeIndexedFields: "indexed_fields"}[ee.code]
	if reason == "" {
		reason = "malformed"
	}
	s.counters.Error(reason)
	s.log.Debug("hec request refused", "source", s.name, "err", ee)
	a := answer{Text: codeText[ee.code], Code: ee.code}
	if ee.code != codeNoData {
		n := ee.number
		a.InvalidEventNumber = &n
	}
	s.reply(w, httpStatus(ee.code), a)
}

func (s *Source) handleHealth(w http.ResponseWriter, r *http.Request) {
	if !s.Ready() {
		s.reply(w, http.StatusServiceUnavailable, answer{Text: codeText[codeUnhealthyQueueFull], Code: codeUnhealthyQueueFull})
		return
	}
	s.reply(w, http.StatusOK, answer{Text: codeText[codeHealthy], Code: codeHealthy})
}

// intro does what every data request needs first: refuse while closing, check the
// token and the channel, and take an in-flight slot. It answers itself when it
// returns ok false; otherwise release must be called.
func (s *Source) intro(w http.ResponseWriter, r *http.Request) (channel string, release func(), ok bool) {
	if s.listener.Closing() {
		w.Header().Set("Connection", "close")
		s.fail(w, codeServerBusy, "shutting_down")
		return "", nil, false
	}
	if !s.authorized(w, r) {
		return "", nil, false
	}
	channel = r.Header.Get(HeaderChannel)
	if channel == "" {
		channel = r.URL.Query().Get("channel")
	}
	if s.cfg.IndexerAcknowledgement {
		if channel == "" {
			s.fail(w, codeChannelMissing, "channel_missing")
			return "", nil, false
		}
		if !validGUID(channel) {
			s.fail(w, codeInvalidChannel, "invalid_channel")
			return "", nil, false
		}
		if !s.acks.admit(channel) {
			s.fail(w, codeServerBusy, "too_many_channels")
			return "", nil, false
		}
	}
	select {
	case s.slots <- struct{}{}:
	case <-r.Context().Done():
		s.fail(w, codeServerBusy, "busy")
		return "", nil, false
	}
	return channel, func() { <-s.slots }, true
}

func (s *Source) handleEvents(w http.ResponseWriter, r *http.Request) {
	channel, release, ok := s.intro(w, r)
	if !ok {
		return
	}
	defer release()
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	recs, err := s.dec.events(body)
	if err != nil {
		s.failEvent(w, err)
		return
	}
	s.store(w, r, channel, recs)
}

func (s *Source) handleRaw(w http.ResponseWriter, r *http.Request) {
	channel, release, ok := s.intro(w, r)
	if !ok {
		return
	}
	defer release()
	q := r.URL.Query()
	m := meta{host: param(q, "host"), source: param(q, "source"), sourcetype: param(q, "sourcetype"), index: param(q, "index")}
	if t := q.Get("time"); t != "" {
		ts, err := epochTime([]byte(t))
		if err != nil {
			s.failEvent(w, &eventError{codeInvalidDataFormat, 0, err.Error()})
			return
		}
		m.time = ts
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	recs, err := s.dec.raw(body, &m)
	if err != nil {
		s.failEvent(w, err)
		return
	}
	s.store(w, r, channel, recs)
}

func param(q map[string][]string, name string) *string {
	if v, ok := q[name]; ok && len(v) > 0 && v[0] != "" {
		return &v[0]
	}
	return nil
}

// store stores the records of a request and answers Success (with an ackId when
// acknowledgement is on) only once they are stored.
func (s *Source) store(w http.ResponseWriter, r *http.Request, channel string, recs [][]byte) {
	s.counters.Received(len(recs), 0)
	err := s.intake.Store(r.Context(), component.Records{Received: time.Now(), Records: recs})
	if err != nil {
		f := httpserver.Classify(err)
		switch f.Status {
		case http.StatusRequestEntityTooLarge:
			s.counters.Error(f.Reason)
			s.reply(w, f.Status, answer{Text: "An event is larger than the intake stream accepts", Code: codeInvalidDataFormat})
			return
		case http.StatusServiceUnavailable:
			s.log.Warn("hec source: store failed", "source", s.name, "err", err)
		}
		// HEC has no 429: a full stream, like an unavailable one, is "server is busy"
		// (503 code 9, with Retry-After).
		s.fail(w, codeServerBusy, f.Reason)
		return
	}
	// The intake counted what it stored as this source's sent events.
	a := answer{Text: codeText[codeSuccess], Code: codeSuccess}
	if s.cfg.IndexerAcknowledgement {
		id := s.acks.issue(channel)
		a.AckID = &id
	}
	s.reply(w, http.StatusOK, a)
}

// ackQuery is the body of an acknowledgement query.
type ackQuery struct {
	Acks []uint64 `json:"acks"`
}

func (s *Source) handleAck(w http.ResponseWriter, r *http.Request) {
	if s.listener.Closing() {
		w.Header().Set("Connection", "close")
		s.fail(w, codeServerBusy, "shutting_down")
		return
	}
	if !s.authorized(w, r) {
		return
	}
	if !s.cfg.IndexerAcknowledgement {
		s.fail(w, codeAckDisabled, "ack_disabled")
		return
	}
	channel := r.Header.Get(HeaderChannel)
	if channel == "" {
		channel = r.URL.Query().Get("channel")
	}
	if channel == "" {
		s.fail(w, codeChannelMissing, "channel_missing")
		return
	}
	if !validGUID(channel) {
		s.fail(w, codeInvalidChannel, "invalid_channel")
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var q ackQuery
	if err := json.Unmarshal(body, &q); err != nil || q.Acks == nil || len(q.Acks) > maxAckQuery {
		s.fail(w, codeInvalidDataFormat, "malformed_ack_query")
		return
	}
	out, _ := json.Marshal(map[string]any{"acks": s.acks.query(channel, q.Acks)})
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	s.counters.Request("200")
}

// authorized checks the token in constant time: every configured token is compared,
// as SHA-256 hashes so that the presented token's length does not matter. It answers
// Splunk's codes itself: 401 code 2 without a token, 401 code 3 for an
// Authorization header of another scheme, 403 code 4 for an unknown token, 400 code
// 16 for a query string token where those are not enabled.
func (s *Source) authorized(w http.ResponseWriter, r *http.Request) bool {
	if len(s.tokens) == 0 {
		return true
	}
	var tok string
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, rest, _ := strings.Cut(auth, " ")
		rest = strings.TrimSpace(rest)
		switch {
		case strings.EqualFold(scheme, "Splunk") && rest != "":
			tok = rest
		case strings.EqualFold(scheme, "Basic"):
			// Splunk documents basic authentication with any user and the token as
			// the password.
			if raw, err := base64.StdEncoding.DecodeString(rest); err == nil {
				_, tok, _ = strings.Cut(string(raw), ":")
			}
			if tok == "" {
				s.fail(w, codeInvalidAuth, "unauthenticated")
				return false
			}
		default:
			s.fail(w, codeInvalidAuth, "unauthenticated")
			return false
		}
	} else if qt := r.URL.Query().Get("token"); qt != "" {
		if !s.cfg.AllowQueryStringAuth {
			s.fail(w, codeQueryAuthDisabled, "query_auth_disabled")
			return false
		}
		tok = qt
	} else {
		s.fail(w, codeTokenRequired, "unauthenticated")
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	match := 0
	for i := range s.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], s.tokens[i][:])
	}
	if match != 1 {
		s.fail(w, codeInvalidToken, "forbidden")
		return false
	}
	return true
}

// readBody reads the body within the size limit, decoding gzip; it answers itself
// when it returns false.
func (s *Source) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := int64(s.cfg.MaxBodyBytes)
	tooLarge := func() ([]byte, bool) {
		s.counters.Error("too_large")
		s.reply(w, http.StatusRequestEntityTooLarge, answer{
			Text: fmt.Sprintf("Content-Length too large (maximum is %d)", limit), Code: codeInvalidDataFormat})
		return nil, false
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	var rd io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			if isMaxBytes(err) {
				return tooLarge()
			}
			s.fail(w, codeInvalidDataFormat, "bad_body")
			return nil, false
		}
		defer zr.Close()
		rd = io.LimitReader(zr, limit+1)
	default:
		s.counters.Error("bad_encoding")
		s.reply(w, http.StatusUnsupportedMediaType, answer{Text: `Content-Encoding must be "gzip" or none`, Code: codeInvalidDataFormat})
		return nil, false
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		if isMaxBytes(err) {
			return tooLarge()
		}
		s.fail(w, codeInvalidDataFormat, "bad_body")
		return nil, false
	}
	if int64(len(body)) > limit {
		return tooLarge()
	}
	s.counters.Received(0, len(body))
	return body, true
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// validGUID reports whether s is a GUID (8-4-4-4-12 hex digits), the form Splunk
// requires of channels.
func validGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func uitoa(v uint64) string { return strconv.FormatUint(v, 10) }
