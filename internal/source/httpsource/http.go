package httpsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
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
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/parse/jsonparse"
	"github.com/vigil-sec/vigil/internal/source/httpserver"
)

// Source is the http source.
type Source struct {
	cfg      Config
	name     string
	intake   component.Intake
	log      *slog.Logger
	counters *component.Counters
	tokens   [][sha256.Size]byte
	signer   *signer   // nil without hmac
	limiters *limiters // nil without rate_limit

	listener httpserver.Listener
}

var _ component.Source = (*Source)(nil)

// New returns an http source.
func New(cfg *Config, deps component.SourceDeps) *Source {
	s := &Source{cfg: *cfg, name: deps.Name, intake: deps.Intake, log: deps.Log,
		counters: deps.Metrics.For("source", deps.Name)}
	for _, t := range cfg.Tokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	if cfg.HMAC != nil {
		s.signer = &signer{cfg: cfg.HMAC.resolved(), now: time.Now}
	}
	if cfg.RateLimit != nil {
		s.limiters = newLimiters(*cfg.RateLimit, time.Now)
	}
	return s
}

// Describe implements component.Source.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s on %s://%s/v1/events/{name}", s.name, s.cfg.Scheme(), s.Addr())
}

// Addr is the address the source listens on (the real port when configured with 0).
func (s *Source) Addr() string { return s.listener.Addr(s.cfg.Address) }

// Ready implements component.Source.
func (s *Source) Ready() bool { return s.listener.Ready() }

// Start implements component.Source.
func (s *Source) Start(context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events/{name}", s.handleEvents)
	mux.HandleFunc("/v1/events/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		s.reply(w, http.StatusMethodNotAllowed, map[string]any{"error": "use POST"})
	})
	return s.listener.Start(httpserver.ListenerConfig{What: "http source " + s.name, Server: s.cfg.Config,
		Log: s.log, Counters: s.counters}, mux)
}

// Stop implements component.Source: new requests get 503, requests in flight finish
// with their true outcome.
func (s *Source) Stop(ctx context.Context) error {
	return s.listener.Stop(ctx)
}

// result is the JSON answer to a request.
type result struct {
	Accepted     int    `json:"accepted"`
	DeadLettered int    `json:"dead_lettered,omitempty"`
	Error        string `json:"error,omitempty"`
}

func (s *Source) reply(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
	s.counters.Request(strconv.Itoa(code))
}

func (s *Source) fail(w http.ResponseWriter, code int, reason, msg string) {
	s.counters.Error(reason)
	s.reply(w, code, result{Error: msg})
}

func (s *Source) handleEvents(w http.ResponseWriter, r *http.Request) {
	if s.listener.Closing() {
		w.Header().Set("Retry-After", s.cfg.RetryAfterSeconds())
		w.Header().Set("Connection", "close")
		s.fail(w, http.StatusServiceUnavailable, "shutting_down", "shutting down; retry on another node or later")
		return
	}
	tokenIndex, ok := s.authorize(w, r)
	if !ok {
		return
	}
	if s.limiters != nil {
		if ok, wait := s.limiters.allow(clientKey(r, tokenIndex)); !ok {
			w.Header().Set("Retry-After", retryAfterSeconds(wait))
			s.fail(w, http.StatusTooManyRequests, "rate_limited", "over this client's request rate; retry after the Retry-After seconds")
			return
		}
	}
	var signedAt string
	if s.signer != nil {
		var serr *sigError
		if signedAt, serr = s.signer.header(r); serr != nil {
			s.fail(w, serr.code, serr.reason, serr.msg)
			return
		}
	}
	name := r.PathValue("name")
	var dataset string
	if s.cfg.PathDataset {
		if !config.ValidDataset(name) {
			s.fail(w, http.StatusBadRequest, "bad_dataset", fmt.Sprintf("%q is not a valid dataset name: use letters, digits, '_', '-' and '.'", name))
			return
		}
		dataset = name
	} else if name != s.name {
		s.fail(w, http.StatusNotFound, "unknown_path", fmt.Sprintf("this listener serves /v1/events/%s", s.name))
		return
	}
	raw, code, err := s.readRaw(w, r)
	if err != nil {
		reason := "bad_body"
		if code == http.StatusRequestEntityTooLarge {
			reason = "too_large"
		}
		s.fail(w, code, reason, err.Error())
		return
	}
	if s.signer != nil {
		if serr := s.signer.verify(r, signedAt, raw); serr != nil {
			s.fail(w, serr.code, serr.reason, serr.msg)
			return
		}
	}
	body, code, err := s.decodeBody(r, raw)
	if err != nil {
		reason := "bad_body"
		if code == http.StatusRequestEntityTooLarge {
			reason = "too_large"
		}
		s.fail(w, code, reason, err.Error())
		return
	}
	s.counters.Received(0, len(body))
	recs, format, bad, err := s.split(r.Header.Get("Content-Type"), body)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "malformed", err.Error())
		return
	}
	if len(recs) == 0 && len(bad) == 0 {
		s.fail(w, http.StatusBadRequest, "empty", "the body holds no events")
		return
	}
	if len(bad) > 0 && s.cfg.OnMalformed == "reject" {
		s.fail(w, http.StatusBadRequest, "malformed", bad[0].reason+" (nothing of this request was stored)")
		return
	}
	s.counters.Received(len(recs)+len(bad), 0)
	ctx := r.Context()
	now := time.Now()
	if len(bad) > 0 {
		letters := make([]component.Letter, len(bad))
		for i, b := range bad {
			letters[i] = component.Letter{Stage: "decode", Reason: b.reason, Dataset: dataset, Time: now, Original: b.data}
		}
		if err := s.intake.DeadLetter(ctx, letters...); err != nil {
			s.storeFailed(w, err)
			return
		}
	}
	if err := s.intake.Store(ctx, component.Records{Dataset: dataset, Format: format, Received: now, Records: recs}); err != nil {
		s.storeFailed(w, err)
		return
	}
	s.reply(w, http.StatusOK, result{Accepted: len(recs), DeadLettered: len(bad)})
}

func (s *Source) storeFailed(w http.ResponseWriter, err error) {
	f := httpserver.Classify(err)
	if f.Status == http.StatusServiceUnavailable {
		s.log.Warn("http source: store failed", "source", s.name, "err", err)
	}
	if f.RetryAfter {
		w.Header().Set("Retry-After", s.cfg.RetryAfterSeconds())
	}
	s.reply(w, f.Status, result{Error: f.Message})
}

// authorized checks the bearer token in constant time; it answers 401 or 403 itself.
func (s *Source) authorized(w http.ResponseWriter, r *http.Request) bool {
	_, ok := s.authorize(w, r)
	return ok
}

// authorize is authorized that also returns the index of the matching token, or -1
// when no tokens are configured.
func (s *Source) authorize(w http.ResponseWriter, r *http.Request) (int, bool) {
	if len(s.tokens) == 0 {
		return -1, true
	}
	auth := r.Header.Get("Authorization")
	// The scheme is case-insensitive (RFC 9110 section 11.1): some clients send "bearer".
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		s.fail(w, http.StatusUnauthorized, "unauthenticated", "missing bearer token")
		return -1, false
	}
	sum := sha256.Sum256([]byte(tok))
	// Every token is compared, and the index picked without a branch on the
	// comparison, so that timing tells nothing about which token matched.
	match, index := 0, 0
	for i := range s.tokens {
		eq := subtle.ConstantTimeCompare(sum[:], s.tokens[i][:])
		match |= eq
		index = subtle.ConstantTimeSelect(eq, i, index)
	}
	if match != 1 {
		s.fail(w, http.StatusForbidden, "forbidden", "token not accepted")
		return -1, false
	}
	return index, true
}

// readRaw reads the body as sent, within the size limit. The raw bytes are kept
// because signatures cover the body as sent, before any Content-Encoding.
func (s *Source) readRaw(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	limit := int64(s.cfg.MaxBodyBytes)
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes is over the %d byte limit", r.ContentLength, limit)
	}
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity", "gzip", "x-gzip":
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Encoding %q is not supported; use gzip or none", enc)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, s.tooLargeOr(err, http.StatusBadRequest), fmt.Errorf("reading body: %v", err)
	}
	return raw, 0, nil
}

// decodeBody decodes the raw body's Content-Encoding within the size limit.
func (s *Source) decodeBody(r *http.Request, raw []byte) ([]byte, int, error) {
	switch strings.ToLower(r.Header.Get("Content-Encoding")) {
	case "gzip", "x-gzip":
	default:
		return raw, 0, nil
	}
	limit := int64(s.cfg.MaxBodyBytes)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("gzip body: %v", err)
	}
	defer zr.Close()
	body, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decoded body is over the %d byte limit", limit)
	}
	return body, 0, nil
}

func (s *Source) tooLargeOr(err error, code int) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return code
}

type badRecord struct {
	reason string
	data   []byte
}

// split cuts a body into records by its content type. JSON bodies are validated here
// so that the sender learns about a malformed line at once.
func (s *Source) split(contentType string, body []byte) (recs [][]byte, format string, bad []badRecord, err error) {
	ct := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	switch ct {
	case "text/plain":
		return lines(body), "lines", nil, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/json-seq":
		recs, bad = ndjson(body)
		return recs, "", bad, nil
	case "application/json":
		recs, bad, err = jsonBody(body)
		return recs, "", bad, err
	default:
		// curl -d sends application/x-www-form-urlencoded; look at the bytes.
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
			recs, bad, err = jsonBody(body)
			return recs, "", bad, err
		}
		return lines(body), "lines", nil, nil
	}
}

// jsonBody takes one object, an array of objects, or (leniently) NDJSON.
func jsonBody(body []byte) ([][]byte, []badRecord, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var recs [][]byte
		var bad []badRecord
		err := jsonparse.EachArrayElement(trimmed, func(i int, elem []byte) error {
			if len(elem) == 0 || elem[0] != '{' {
				bad = append(bad, badRecord{reason: fmt.Sprintf("array element %d: not a JSON object", i), data: elem})
				return nil
			}
			recs = append(recs, elem)
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("malformed JSON array: %v", err)
		}
		return recs, bad, nil
	}
	if err := jsonparse.ValidateObject(trimmed); err == nil {
		return [][]byte{trimmed}, nil, nil
	}
	recs, bad := ndjson(body)
	return recs, bad, nil
}

// ndjson takes one JSON object per line; blank lines are ignored.
func ndjson(body []byte) (recs [][]byte, bad []badRecord) {
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if err := jsonparse.ValidateObject(line); err != nil {
			bad = append(bad, badRecord{reason: fmt.Sprintf("line %d: %v", n, err), data: line})
			continue
		}
		recs = append(recs, line)
	}
	return recs, bad
}

// lines takes one record per non-blank line.
func lines(body []byte) [][]byte {
	var recs [][]byte
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		recs = append(recs, line)
	}
	return recs
}
