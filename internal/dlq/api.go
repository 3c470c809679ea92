package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/stream"
)

// API paths, served on the admin listener.
const (
	PathSummary = "/v1/dlq/summary"
	PathEntries = "/v1/dlq/entries"
	PathReplay  = "/v1/dlq/replay"
)

// Entries per request of GET /v1/dlq/entries: one answer is at most a page; the
// next page starts from the last sequence + 1.
const (
	DefaultEntries = 100
	MaxEntries     = 1000
)

// replayTimeout bounds one replay chunk. The chunk runs detached from the request,
// so that a client that goes away does not cut it between storing a copy and
// removing the letter.
const replayTimeout = 2 * time.Minute

// API is the DLQ's JSON API:
//
//	GET  /v1/dlq/summary?stage=&source=&since=|after=       → Summary
//	GET  /v1/dlq/entries?…&limit=N&from=SEQ[&from_index=I]                → Entry per line (NDJSON), streamed
//	POST /v1/dlq/replay?…&limit=N&from=SEQ&up_to=SEQ&format= → ReplayResult
//
// since is a duration ("90m", "7d"), after an RFC 3339 time; errors answer
// {"error": "..."} with 400 for a bad request and 503 when the stream failed. Access
// control (the bearer token, cross-site requests) is the admin listener's.
type API struct {
	st      *stream.Stream
	metrics *Metrics
	log     *slog.Logger
	// replayMu runs one replay chunk at a time, so two operators' runs take turns
	// instead of racing over the same letters.
	replayMu sync.Mutex
}

// NewAPI returns the API over st, registering the replay counters on reg.
func NewAPI(st *stream.Stream, reg prometheus.Registerer, log *slog.Logger) *API {
	if log == nil {
		log = slog.Default()
	}
	return &API{st: st, metrics: NewMetrics(reg), log: log}
}

// Mux is where the API mounts its routes (an *http.ServeMux or the admin server).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Mount registers the API's routes on m.
func (a *API) Mount(m Mux) {
	m.Handle("GET "+PathSummary, http.HandlerFunc(a.summary))
	m.Handle("GET "+PathEntries, http.HandlerFunc(a.entries))
	m.Handle("POST "+PathReplay, http.HandlerFunc(a.replay))
}

func (a *API) summary(w http.ResponseWriter, r *http.Request) {
	f, err := FilterFromQuery(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sum, err := Summarize(r.Context(), a.st, f)
	if err != nil {
		a.fail(w, "summary", err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (a *API) entries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := FilterFromQuery(q, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	limit, err := intParam(q, "limit", DefaultEntries, MaxEntries)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	// Each letter is written as it is read, so that a page of large letters is never
	// held whole in memory.
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	wrote := false
	err = EachEntry(r.Context(), a.st, f, limit, func(e *Entry) error {
		wrote = true
		return enc.Encode(e)
	})
	switch {
	case err == nil:
		if !wrote {
			w.WriteHeader(http.StatusOK)
		}
	case !wrote:
		a.fail(w, "entries", err)
	default:
		// The status is sent: cut the response, so the client sees it incomplete
		// rather than a short page.
		a.log.Warn("dlq api: entries failed", "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (a *API) replay(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := FilterFromQuery(q, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	limit, err := intParam(q, "limit", DefaultLimit, MaxLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	format := q.Get("format")
	if format != "" && !validToken(format) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("format: %q is not a format name", format))
		return
	}
	a.replayMu.Lock()
	defer a.replayMu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), replayTimeout)
	defer cancel()
	res, err := Replay(ctx, a.st, f, ReplayOptions{Limit: limit, Format: format}, a.metrics)
	if err != nil {
		a.log.Warn("dlq replay stopped", "replayed", res.Replayed, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, struct {
			ReplayResult
			Error string `json:"error"`
		}{res, err.Error()})
		return
	}
	if res.Replayed > 0 || res.Skipped > 0 {
		a.log.Info("dlq replay", "replayed", res.Replayed, "duplicates", res.Duplicates, "skipped", res.Skipped,
			"remaining", res.Remaining)
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) fail(w http.ResponseWriter, what string, err error) {
	a.log.Warn("dlq api: "+what+" failed", "err", err)
	writeError(w, http.StatusServiceUnavailable, err)
}

// FilterFromQuery reads stage, source, since or after, from and up_to. now anchors
// since.
func FilterFromQuery(q url.Values, now time.Time) (Filter, error) {
	f := Filter{Stage: q.Get("stage"), Source: q.Get("source")}
	var errs []error
	if s := q.Get("since"); s != "" {
		d, err := ParseSince(s)
		if err != nil {
			errs = append(errs, err)
		} else {
			f.After = now.Add(-d)
		}
	}
	if s := q.Get("after"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("after: want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", s))
		} else if t.After(f.After) {
			f.After = t
		}
	}
	for _, p := range []struct {
		name string
		dst  *uint64
	}{{"from", &f.From}, {"up_to", &f.UpTo}} {
		if s := q.Get(p.name); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: want a stream sequence number, got %q", p.name, s))
			}
			*p.dst = n
		}
	}
	if s := q.Get("from_index"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("from_index: want a letter's index in its message, got %q", s))
		}
		f.FromIndex = n
	}
	if err := errors.Join(errs...); err != nil {
		return f, err
	}
	return f, f.Validate()
}

// ParseSince reads a look-back duration: Go durations ("90m", "36h") and whole
// days ("7d").
func ParseSince(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		if err == nil && (n < 0 || n > 100*365) {
			err = errors.New("out of range")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("since: want a positive duration such as 30m, 12h or 7d, got %q", s)
	}
	return d, nil
}

func intParam(q url.Values, name string, def, limit int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > limit {
		return 0, fmt.Errorf("%s: want a number from 1 to %d, got %q", name, limit, s)
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
