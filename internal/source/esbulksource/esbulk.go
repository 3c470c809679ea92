package esbulksource

import (
	"context"
	"crypto/rand"
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
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/source/httpserver"
)

// Source is the elasticsearch_bulk source.
type Source struct {
	cfg      Config
	name     string
	intake   component.Intake
	log      *slog.Logger
	counters *component.Counters
	creds    [][sha256.Size]byte // basic "user:password" and API key "id:key", hashed
	basic    int                 // creds[:basic] are basic credentials
	slots    chan struct{}

	listener httpserver.Listener
}

var _ component.Source = (*Source)(nil)

// New returns an elasticsearch_bulk source.
func New(cfg *Config, deps component.SourceDeps) *Source {
	s := &Source{cfg: *cfg, name: deps.Name, intake: deps.Intake, log: deps.Log,
		counters: deps.Metrics.For("source", deps.Name),
		slots:    make(chan struct{}, max(cfg.MaxInFlight, 1))}
	for _, u := range cfg.Users {
		s.creds = append(s.creds, sha256.Sum256([]byte(u.Username+":"+u.Password)))
	}
	s.basic = len(s.creds)
	for _, k := range cfg.APIKeys {
		if c, err := apiKeyCredential(k); err == nil {
			s.creds = append(s.creds, sha256.Sum256([]byte(c)))
		}
	}
	return s
}

// Describe implements component.Source.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s on %s://%s/_bulk (Elasticsearch bulk API)", s.name, s.cfg.Scheme(), s.Addr())
}

// Addr is the address the source listens on (the real port when configured with 0).
func (s *Source) Addr() string { return s.listener.Addr(s.cfg.Address) }

// Ready implements component.Source.
func (s *Source) Ready() bool { return s.listener.Ready() }

// Start implements component.Source.
func (s *Source) Start(context.Context) error {
	return s.listener.Start(httpserver.ListenerConfig{What: "elasticsearch_bulk source " + s.name, Server: s.cfg.Config,
		Log: s.log, Counters: s.counters}, s.routes())
}

// Stop implements component.Source: new requests get 503, requests in flight finish
// with their true outcome.
func (s *Source) Stop(ctx context.Context) error {
	return s.listener.Stop(ctx)
}

func (s *Source) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_bulk", s.handleBulk)
	mux.HandleFunc("PUT /_bulk", s.handleBulk)
	mux.HandleFunc("GET /{$}", s.handleRoot) // and HEAD
	mux.HandleFunc("GET /_license", s.handleLicense)
	mux.HandleFunc("GET /_xpack", s.handleXpack)
	mux.HandleFunc("GET /_cluster/health", s.handleHealth)
	mux.HandleFunc("GET /_cluster/health/{index}", s.handleHealth)
	for _, p := range []string{"/_index_template/{name}", "/_component_template/{name}", "/_template/{name}",
		"/_ilm/policy/{name}", "/_ingest/pipeline/{name}", "/_data_stream/{name}"} {
		mux.HandleFunc(p, s.handleSetup)
	}
	// /{index}/_bulk would conflict with the setup paths in ServeMux's patterns
	// (/_index_template/_bulk matches both), so it is matched here.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost || r.Method == http.MethodPut {
			if index, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/_bulk"); ok && index != "" && !strings.Contains(index, "/") {
				r.SetPathValue("index", index)
				s.handleBulk(w, r)
				return
			}
		}
		s.fail(w, http.StatusBadRequest, "unknown_path", "illegal_argument_exception",
			fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.URL.Path, r.Method))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The official clients refuse a server without this header.
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		if s.listener.Closing() {
			w.Header().Set("Connection", "close")
			s.retryLater(w, http.StatusServiceUnavailable, "shutting_down", "node_closed_exception", "this node is shutting down; retry later")
			return
		}
		if !s.authorized(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Source) writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	s.counters.Request(strconv.Itoa(status))
}

// fail answers an Elasticsearch error body and counts it under reason.
func (s *Source) fail(w http.ResponseWriter, status int, reason, errType, msg string) {
	s.counters.Error(reason)
	cause := map[string]string{"type": errType, "reason": msg}
	body, _ := json.Marshal(map[string]any{
		"error":  map[string]any{"root_cause": []any{cause}, "type": errType, "reason": msg},
		"status": status,
	})
	s.writeJSON(w, status, body)
}

func (s *Source) retryLater(w http.ResponseWriter, status int, reason, errType, msg string) {
	w.Header().Set("Retry-After", s.cfg.RetryAfterSeconds())
	s.fail(w, status, reason, errType, msg)
}

// authorized checks basic credentials or an API key in constant time: every
// configured credential is compared, as SHA-256 hashes. It answers 401 itself.
func (s *Source) authorized(w http.ResponseWriter, r *http.Request) bool {
	if len(s.creds) == 0 {
		return true
	}
	unauthorized := func(msg string) bool {
		w.Header().Add("WWW-Authenticate", `Basic realm="security", charset="UTF-8"`)
		w.Header().Add("WWW-Authenticate", "ApiKey")
		s.fail(w, http.StatusUnauthorized, "unauthenticated", "security_exception", msg)
		return false
	}
	scheme, value, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	var cred string
	var from, to int
	switch {
	case strings.EqualFold(scheme, "Basic"):
		from, to = 0, s.basic
	case strings.EqualFold(scheme, "ApiKey"):
		from, to = s.basic, len(s.creds)
	default:
		return unauthorized(fmt.Sprintf("missing authentication credentials for REST request [%s]", r.URL.Path))
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return unauthorized("unable to authenticate: the credentials are not valid base64")
	}
	cred = string(raw)
	sum := sha256.Sum256([]byte(cred))
	match := 0
	for i := from; i < to; i++ {
		match |= subtle.ConstantTimeCompare(sum[:], s.creds[i][:])
	}
	if match != 1 {
		return unauthorized(fmt.Sprintf("unable to authenticate with provided credentials for REST request [%s]", r.URL.Path))
	}
	return true
}

func (s *Source) handleRoot(w http.ResponseWriter, r *http.Request) {
	major, _, _ := strings.Cut(s.cfg.Version, ".")
	body, _ := json.Marshal(map[string]any{
		"name":         s.name,
		"cluster_name": "vigil",
		"cluster_uuid": "vigil-" + s.name,
		"version": map[string]any{
			"number":                              s.cfg.Version,
			"build_flavor":                        "default",
			"build_type":                          "vigil",
			"build_hash":                          "vigil",
			"build_date":                          "2024-12-11T12:08:05.663969764Z",
			"build_snapshot":                      false,
			"lucene_version":                      "9.12.0",
			"minimum_wire_compatibility_version":  major + ".0.0",
			"minimum_index_compatibility_version": major + ".0.0",
		},
		"tagline": "You Know, for Search",
	})
	s.writeJSON(w, http.StatusOK, body)
}

func (s *Source) handleLicense(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, []byte(`{"license":{"status":"active","uid":"vigil","type":"basic","issue_date":"2024-01-01T00:00:00.000Z","issue_date_in_millis":1704067200000,"max_nodes":1000,"max_resource_units":null,"issued_to":"vigil","issuer":"elasticsearch","start_date_in_millis":-1}}`))
}

func (s *Source) handleXpack(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, []byte(`{"build":{"hash":"vigil","date":"2024-12-11T12:08:05.663969764Z"},"license":{"uid":"vigil","type":"basic","mode":"basic","status":"active"},"features":{"ilm":{"available":true,"enabled":true},"security":{"available":true,"enabled":true}},"tagline":"You know, for X"}`))
}

func (s *Source) handleHealth(w http.ResponseWriter, r *http.Request) {
	status := "green"
	if !s.Ready() {
		status = "red"
	}
	s.writeJSON(w, http.StatusOK, []byte(`{"cluster_name":"vigil","status":"`+status+`","timed_out":false,"number_of_nodes":1,"number_of_data_nodes":1,"active_primary_shards":0,"active_shards":0,"relocating_shards":0,"initializing_shards":0,"unassigned_shards":0,"delayed_unassigned_shards":0,"number_of_pending_tasks":0,"number_of_in_flight_fetch":0,"task_max_waiting_in_queue_millis":0,"active_shards_percent_as_number":100.0}`))
}

// handleSetup answers template, policy, pipeline and data stream calls: nothing is
// there to get, and whatever is put is acknowledged (and ignored: Vigil normalizes
// in its own processing stage).
func (s *Source) handleSetup(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.counters.Request("404")
		const body = `{"error":{"root_cause":[{"type":"resource_not_found_exception","reason":"not found"}],"type":"resource_not_found_exception","reason":"not found"},"status":404}`
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, body)
		}
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		s.writeJSON(w, http.StatusOK, []byte(`{"acknowledged":true}`))
	}
}

func (s *Source) handleBulk(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-r.Context().Done():
		s.retryLater(w, http.StatusTooManyRequests, "busy", "es_rejected_execution_exception", "too many bulk requests in flight; retry later")
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	items, err := parseBulk(body, r.PathValue("index"))
	if err != nil {
		var re *requestError
		errors.As(err, &re)
		s.fail(w, http.StatusBadRequest, "malformed", re.errType, re.reason)
		return
	}
	if len(items) == 0 {
		s.fail(w, http.StatusBadRequest, "empty", "action_request_validation_exception", "Validation Failed: 1: no requests added;")
		return
	}
	s.counters.Received(len(items), 0)
	ctx := r.Context()
	// Group the documents to store by dataset, keeping their order.
	var groups []component.Records
	groupOf := map[string]int{}
	var letters []component.Letter
	for i := range items {
		it := &items[i]
		if it.status != 0 {
			s.counters.Error(map[string]string{"illegal_argument_exception": "unsupported_action",
				"action_request_validation_exception": "missing_index"}[it.errType] + map[string]string{"mapper_parsing_exception": "malformed_document"}[it.errType])
			if it.errType == "mapper_parsing_exception" {
				letters = append(letters, component.Letter{Stage: "decode", Reason: it.reason, Time: start, Original: it.doc})
			}
			continue
		}
		ds := ""
		if s.cfg.IndexAsDataset {
			ds = datasetOf(it.index)
		}
		g, ok := groupOf[ds]
		if !ok {
			g = len(groups)
			groupOf[ds] = g
			groups = append(groups, component.Records{Dataset: ds, Received: start})
		}
		groups[g].Records = append(groups[g].Records, it.doc)
	}
	if len(letters) > 0 {
		if err := s.intake.DeadLetter(ctx, letters...); err != nil {
			s.storeFailed(w, err)
			return
		}
	}
	// The intake counts what it stores and dead-letters as this source's sent and
	// dead-lettered records.
	for _, g := range groups {
		if err := s.intake.Store(ctx, g); err != nil {
			s.storeFailed(w, err)
			return
		}
	}
	s.writeJSON(w, http.StatusOK, bulkResponse(items, time.Since(start)))
}

func (s *Source) storeFailed(w http.ResponseWriter, err error) {
	f := httpserver.Classify(err)
	errType := "unavailable_shards_exception"
	switch f.Status {
	case http.StatusTooManyRequests:
		errType = "es_rejected_execution_exception"
	case http.StatusRequestEntityTooLarge:
		errType, f.Message = "illegal_argument_exception", "a document is larger than the intake stream accepts"
	default:
		s.log.Warn("elasticsearch_bulk source: store failed", "source", s.name, "err", err)
	}
	if f.RetryAfter {
		w.Header().Set("Retry-After", s.cfg.RetryAfterSeconds())
	}
	s.fail(w, f.Status, f.Reason, errType, f.Message)
}

// bulkResponse builds Elasticsearch's bulk answer for items whose documents are all
// stored.
func bulkResponse(items []item, took time.Duration) []byte {
	ids := make([]byte, 15*len(items))
	_, _ = rand.Read(ids)
	errs := false
	for i := range items {
		if items[i].status != 0 {
			errs = true
		}
	}
	b := make([]byte, 0, 64+200*len(items))
	b = append(b, `{"took":`...)
	b = strconv.AppendInt(b, took.Milliseconds(), 10)
	b = append(b, `,"errors":`...)
	b = strconv.AppendBool(b, errs)
	b = append(b, `,"items":[`...)
	for i := range items {
		it := &items[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"`...)
		b = append(b, it.action...)
		b = append(b, `":{"_index":`...)
		b = event.AppendString(b, it.index)
		b = append(b, `,"_id":`...)
		id := it.id
		if id == "" && it.status == 0 {
			id = base64.RawURLEncoding.EncodeToString(ids[15*i : 15*i+15])
		}
		if id == "" {
			b = append(b, "null"...)
		} else {
			b = event.AppendString(b, id)
		}
		if it.status == 0 {
			b = append(b, `,"_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `,"_primary_term":1,"status":201}}`...)
			continue
		}
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(it.status), 10)
		b = append(b, `,"error":{"type":`...)
		b = event.AppendString(b, it.errType)
		b = append(b, `,"reason":`...)
		b = event.AppendString(b, it.reason)
		b = append(b, `}}}`...)
	}
	return append(b, "]}"...)
}

// readBody reads the body within the size limit, decoding gzip; it answers itself
// when it returns false.
func (s *Source) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := int64(s.cfg.MaxBodyBytes)
	tooLarge := func() ([]byte, bool) {
		s.fail(w, http.StatusRequestEntityTooLarge, "too_large", "content_too_long_exception",
			fmt.Sprintf("request content exceeds the limit of [%d] bytes (max_body_bytes)", limit))
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
			s.fail(w, http.StatusBadRequest, "bad_body", "parse_exception", "the gzip body cannot be read: "+err.Error())
			return nil, false
		}
		defer zr.Close()
		rd = io.LimitReader(zr, limit+1)
	default:
		s.fail(w, http.StatusUnsupportedMediaType, "bad_encoding", "illegal_argument_exception",
			fmt.Sprintf("Content-Encoding %.40q is not supported; use gzip or none", enc))
		return nil, false
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		if isMaxBytes(err) {
			return tooLarge()
		}
		s.fail(w, http.StatusBadRequest, "bad_body", "parse_exception", "reading the body: "+err.Error())
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
