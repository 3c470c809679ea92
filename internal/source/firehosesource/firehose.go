// Package firehosesource is the `firehose` source: an Amazon Data Firehose HTTP
// endpoint destination, speaking the "HTTP endpoint delivery request and response
// specifications", format version 1.0.
//
// Firehose POSTs {"requestId", "timestamp", "records": [{"data": "<base64>"}]} to
// the configured URL, optionally gzip-compressed, with the stream's access key in
// X-Amz-Firehose-Access-Key. Each record's decoded data is stored as one raw record
// (the source's format parses it in processing: cloudwatch_logs for CloudWatch Logs
// subscriptions, whose records are gzip JSON). The answer is 200 with
// {"requestId", "timestamp"} only after every record is stored; any other answer
// carries {"requestId", "timestamp", "errorMessage"} and Firehose retries the whole
// request with backoff, then copies it to its S3 error bucket when its retry
// duration runs out — except after a 413, which Firehose treats as permanent and
// drops without a copy, so this source answers 413 only for a body over
// max_body_bytes.
//
// Retries store again. Event IDs derive from the intake stream position, so a retry
// after a lost answer (or after a partial store) yields a second copy of the records
// it repeats; Firehose keeps the request ID across retries, but the intake does not
// take a message ID to deduplicate by.
package firehosesource

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/source/httpserver"
)

// Header names of the specification.
const (
	HeaderRequestID       = "X-Amz-Firehose-Request-Id"
	HeaderAccessKey       = "X-Amz-Firehose-Access-Key"
	HeaderSourceArn       = "X-Amz-Firehose-Source-Arn"
	HeaderProtocolVersion = "X-Amz-Firehose-Protocol-Version"
	// ProtocolVersion is the only version the specification defines.
	ProtocolVersion = "1.0"
)

// Source is the firehose source.
type Source struct {
	cfg      Config
	name     string
	intake   component.Intake
	log      *slog.Logger
	counters *component.Counters
	keys     [][sha256.Size]byte
	slots    chan struct{}

	listener httpserver.Listener
}

var _ component.Source = (*Source)(nil)

// New returns a firehose source.
func New(cfg *Config, deps component.SourceDeps) *Source {
	s := &Source{cfg: *cfg, name: deps.Name, intake: deps.Intake, log: deps.Log,
		counters: deps.Metrics.For("source", deps.Name),
		slots:    make(chan struct{}, max(cfg.MaxInFlight, 1))}
	for _, k := range cfg.AccessKeys {
		s.keys = append(s.keys, sha256.Sum256([]byte(k)))
	}
	return s
}

// Describe implements component.Source.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s on %s://%s%s (Firehose HTTP endpoint)", s.name, s.cfg.Scheme(), s.Addr(), s.cfg.Path)
}

// Addr is the address the source listens on (the real port when configured with 0).
func (s *Source) Addr() string { return s.listener.Addr(s.cfg.Address) }

// Ready implements component.Source.
func (s *Source) Ready() bool { return s.listener.Ready() }

// Start implements component.Source.
func (s *Source) Start(context.Context) error {
	// The answer may wait for the stream up to response_timeout.
	return s.listener.Start(httpserver.ListenerConfig{What: "firehose source " + s.name, Server: s.cfg.Config,
		WriteTimeout: s.cfg.ResponseTimeout + 10*time.Second, Log: s.log, Counters: s.counters}, s)
}

// Stop implements component.Source: new requests get 503, requests in flight finish
// with their true outcome.
func (s *Source) Stop(ctx context.Context) error {
	return s.listener.Stop(ctx)
}

// response is the answer body of the specification.
type response struct {
	RequestID    string `json:"requestId"`
	Timestamp    int64  `json:"timestamp"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}

// maxErrorMessage is the specification's limit on errorMessage.
const maxErrorMessage = 8192

// exchange is one request being answered.
type exchange struct {
	s         *Source
	w         http.ResponseWriter
	r         *http.Request
	requestID string
}

func (x *exchange) reply(code int, msg string) {
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	body, _ := json.Marshal(response{RequestID: x.requestID, Timestamp: time.Now().UnixMilli(), ErrorMessage: msg})
	h := x.w.Header()
	h.Set("Content-Type", "application/json")
	// The specification requires Content-Length on an answer with a body.
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.w.WriteHeader(code)
	_, _ = x.w.Write(body)
	x.s.counters.Request(strconv.Itoa(code))
}

// fail answers an error status and logs it with the request ID, which the
// specification asks endpoints to log.
func (x *exchange) fail(code int, reason, msg string) {
	x.s.counters.Error(reason)
	x.s.log.Warn("firehose request failed", "source", x.s.name, "request_id", x.requestID,
		"source_arn", x.r.Header.Get(HeaderSourceArn), "status", code, "reason", reason, "error", msg)
	x.reply(code, msg)
}

func (x *exchange) retryLater(code int, reason, msg string) {
	x.w.Header().Set("Retry-After", x.s.cfg.RetryAfterSeconds())
	x.fail(code, reason, msg)
}

// ServeHTTP answers one Firehose delivery.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &exchange{s: s, w: w, r: r, requestID: r.Header.Get(HeaderRequestID)}
	if s.listener.Closing() {
		w.Header().Set("Connection", "close")
		x.retryLater(http.StatusServiceUnavailable, "shutting_down", "shutting down; retry later")
		return
	}
	if r.URL.Path != s.cfg.Path {
		x.fail(http.StatusNotFound, "unknown_path", fmt.Sprintf("this endpoint serves the path %s", s.cfg.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		x.fail(http.StatusMethodNotAllowed, "bad_method", "use POST")
		return
	}
	if !s.authorized(x) {
		return
	}
	if v := r.Header.Get(HeaderProtocolVersion); v != "" && v != ProtocolVersion {
		x.fail(http.StatusBadRequest, "bad_protocol_version", fmt.Sprintf("%s %q is not supported; this endpoint speaks %s", HeaderProtocolVersion, v, ProtocolVersion))
		return
	}
	ctx, cancel := context.WithDeadline(r.Context(), start.Add(s.cfg.ResponseTimeout))
	defer cancel()
	// Bound the requests held in memory at once; the others wait unread.
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		x.retryLater(http.StatusServiceUnavailable, "busy", "too many requests in flight; retry later")
		return
	}
	body, code, err := s.readBody(w, r)
	if err != nil {
		reason := "bad_body"
		if code == http.StatusRequestEntityTooLarge {
			reason = "too_large"
		}
		x.fail(code, reason, err.Error())
		return
	}
	s.counters.Received(0, len(body))
	req, err := decodeEnvelope(body)
	if err != nil {
		x.fail(http.StatusBadRequest, "malformed", err.Error())
		return
	}
	// The answer must carry the request's requestId; the body's is authoritative
	// (the header holds the same value per the specification).
	x.requestID = req.ID
	s.counters.Received(len(req.Records)+req.Empty, 0)
	if req.Empty > 0 {
		s.counters.Discarded("empty_record", req.Empty)
	}
	if err := s.intake.Store(ctx, component.Records{ID: unitID(req), Received: start, Records: req.Records}); err != nil {
		s.storeFailed(x, err)
		return
	}
	x.reply(http.StatusOK, "")
	s.log.Debug("firehose request stored", "source", s.name, "request_id", req.ID,
		"records", len(req.Records), "bytes", req.Bytes, "took", time.Since(start))
}

func (s *Source) storeFailed(x *exchange, err error) {
	f := httpserver.Classify(err)
	switch f.Status {
	case http.StatusRequestEntityTooLarge:
		// Not 413: Firehose would drop the batch without a copy. A 500 makes it retry
		// and, when its retry duration runs out, keep the batch in its S3 error bucket.
		f.Status = http.StatusInternalServerError
		f.Message += "; raise the stream's message size limit"
	case http.StatusServiceUnavailable:
		s.log.Warn("firehose source: store failed", "source", s.name, "request_id", x.requestID, "err", err)
	}
	if f.RetryAfter {
		x.w.Header().Set("Retry-After", x.s.cfg.RetryAfterSeconds())
	}
	x.fail(f.Status, f.Reason, f.Message)
}

// authorized checks the access key in constant time: every configured key is
// compared, as SHA-256 hashes so that the length of the presented key does not
// matter. It answers 401 or 403 itself.
func (s *Source) authorized(x *exchange) bool {
	if len(s.keys) == 0 {
		return true
	}
	key := x.r.Header.Get(HeaderAccessKey)
	if key == "" {
		x.fail(http.StatusUnauthorized, "unauthenticated", "missing "+HeaderAccessKey)
		return false
	}
	sum := sha256.Sum256([]byte(key))
	match := 0
	for i := range s.keys {
		match |= subtle.ConstantTimeCompare(sum[:], s.keys[i][:])
	}
	if match != 1 {
		x.fail(http.StatusForbidden, "forbidden", "access key not accepted")
		return false
	}
	return true
}

// readBody reads the body within the size limit, decoding gzip.
func (s *Source) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	limit := int64(s.cfg.MaxBodyBytes)
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes is over the %d byte limit (max_body_bytes)", r.ContentLength, limit)
	}
	var rd io.Reader = http.MaxBytesReader(w, r.Body, limit)
	gz := false
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, tooLargeOr(err, http.StatusBadRequest), fmt.Errorf("gzip body: %v", err)
		}
		defer zr.Close()
		rd = io.LimitReader(zr, limit+1)
		gz = true
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Encoding %q is not supported; use gzip or none", enc)
	}
	var body []byte
	var err error
	if !gz && r.ContentLength > 0 {
		// Firehose sends Content-Length: read into a buffer of the right size at once.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(rd, body)
	} else {
		body, err = io.ReadAll(rd)
	}
	if err != nil {
		return nil, tooLargeOr(err, http.StatusBadRequest), fmt.Errorf("reading body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decoded body is over the %d byte limit (max_body_bytes)", limit)
	}
	return body, 0, nil
}

func tooLargeOr(err error, code int) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return code
}

// unitID names a request's records for the stream's duplicate detection. Firehose
// retries a delivery it got no 200 for with the same requestId and records, so the
// retry of one whose store took (its answer lost, late or an error) is dropped
// within buffer.duplicate_window instead of stored again. The hash of the records
// keeps two deliveries that share a requestId but not their records apart.
func unitID(req *request) string {
	h := xxhash.New()
	var n [8]byte
	for _, r := range req.Records {
		binary.LittleEndian.PutUint64(n[:], uint64(len(r)))
		_, _ = h.Write(n[:])
		_, _ = h.Write(r)
	}
	return "fh:" + req.ID + ":" + strconv.FormatUint(h.Sum64(), 16)
}
