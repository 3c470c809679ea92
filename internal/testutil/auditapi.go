package testutil

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// AuditEvent is one event of a fake audit-log API.
type AuditEvent struct {
	ID   string
	Time time.Time
	// Fields, when set, replace or add members of the served event (a nil value
	// removes one), to serve events a schema rejects.
	Fields map[string]any
}

// withFields applies e.Fields to the served object m.
func (e AuditEvent) withFields(m map[string]any) map[string]any {
	for k, v := range e.Fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// AuditAPI is a fake of a SaaS audit-log API that pages and rate-limits as the
// vendor documents, for the poll source's presets and crash test. Which vendor is
// chosen by the constructor.
type AuditAPI struct {
	*httptest.Server
	mu     sync.Mutex
	events []AuditEvent // sorted by time, then id
	// Requests counts the API requests answered (rate-limited ones too); Limited
	// counts the rate-limited answers.
	requests, limited int
	// limitEvery rate-limits every n-th request (0: never).
	limitEvery int
	// delay is how long each page takes to answer.
	delay time.Duration
	token string
}

// Add appends events; they are served in time order.
func (a *AuditAPI) Add(evs ...AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, evs...)
	sort.SliceStable(a.events, func(i, j int) bool {
		if !a.events[i].Time.Equal(a.events[j].Time) {
			return a.events[i].Time.Before(a.events[j].Time)
		}
		return a.events[i].ID < a.events[j].ID
	})
}

// SetLimitEvery rate-limits every n-th request (0: none).
func (a *AuditAPI) SetLimitEvery(n int) { a.mu.Lock(); a.limitEvery = n; a.mu.Unlock() }

// SetDelay makes each page answer after d.
func (a *AuditAPI) SetDelay(d time.Duration) { a.mu.Lock(); a.delay = d; a.mu.Unlock() }

// Counts returns the requests answered and how many were rate-limited.
func (a *AuditAPI) Counts() (requests, limited int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests, a.limited
}

// admit counts a request and reports whether to rate-limit it.
func (a *AuditAPI) admit() (limit bool, delay time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
	if a.limitEvery > 0 && a.requests%a.limitEvery == 0 {
		a.limited++
		return true, 0
	}
	return false, a.delay
}

// page returns up to limit events with time >= since, after the event with id
// after (when set).
func (a *AuditAPI) page(since time.Time, after string, limit int) []AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := 0
	if after != "" {
		for i, e := range a.events {
			if e.ID == after {
				start = i + 1
			}
		}
	}
	var out []AuditEvent
	for _, e := range a.events[start:] {
		if e.Time.Before(since) {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, e)
	}
	return out
}

// StartOktaSystemLog serves Okta's System Log API (GET /api/v1/logs) as its
// reference describes it: SSWS API token authentication; since (inclusive), until,
// limit (default 100, at most 1000) and the opaque after cursor; events in
// ascending published order; a Link header with rel="self" and, for a polling
// request (no until), always a rel="next" link — even on the last page, which is
// empty. A rate-limited request gets 429 with X-Rate-Limit-Limit,
// X-Rate-Limit-Remaining: 0 and X-Rate-Limit-Reset (Unix seconds), and no
// Retry-After, as Okta answers. Events are
// {"uuid","published","eventType","displayMessage","actor","outcome"}.
func StartOktaSystemLog(t testing.TB, token string) *AuditAPI {
	t.Helper()
	a := &AuditAPI{token: token}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/logs" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "SSWS "+a.token {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errorCode":"E0000011","errorSummary":"Invalid token provided"}`)
			return
		}
		limited, delay := a.admit()
		if limited {
			w.Header().Set("X-Rate-Limit-Limit", "60")
			w.Header().Set("X-Rate-Limit-Remaining", "0")
			w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}`)
			return
		}
		time.Sleep(delay)
		q := r.URL.Query()
		since := time.Now().Add(-7 * 24 * time.Hour)
		if s := q.Get("since"); s != "" {
			var err error
			if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"errorCode":"E0000030","errorSummary":"Bad request. Invalid since: %s"}`, s)
				return
			}
		}
		limit := 100
		if l := q.Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
			limit = min(max(limit, 1), 1000)
		}
		evs := a.page(since, q.Get("after"), limit)
		out := make([]map[string]any, 0, len(evs))
		for _, e := range evs {
			out = append(out, e.withFields(map[string]any{"uuid": e.ID, "published": e.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
				"eventType": "user.session.start", "displayMessage": "User login to Okta", "severity": "INFO",
				"actor":   map[string]any{"id": "00u1", "type": "User", "alternateId": "alice@example.com"},
				"outcome": map[string]any{"result": "SUCCESS"}}))
		}
		self := "http://" + r.Host + r.URL.RequestURI()
		next := q
		if len(evs) > 0 {
			next.Set("after", evs[len(evs)-1].ID)
		}
		links := []string{"<" + self + `>; rel="self"`}
		if q.Get("until") == "" {
			links = append(links, "<http://"+r.Host+r.URL.Path+"?"+next.Encode()+`>; rel="next"`)
		}
		w.Header().Set("Link", strings.Join(links, ", "))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(a.Close)
	return a
}

// StartGitHubAuditLog serves GitHub's organization audit log
// (GET /orgs/{org}/audit-log) as its REST reference describes it: a bearer token;
// phrase (only created:>=TIME is understood here), per_page (default 30, at most
// 100), order (asc|desc, default desc) and the after cursor; a Link header with
// rel="next" while more pages exist, none on the last page. Rate limiting as
// GitHub documents it: the primary limit answers 403 with x-ratelimit-remaining: 0
// and x-ratelimit-reset (Unix seconds), a secondary limit 429 with retry-after
// (seconds); the two alternate here. Events are
// {"@timestamp","_document_id","action","actor","created_at"} with times in Unix
// milliseconds.
func StartGitHubAuditLog(t testing.TB, org, token string) *AuditAPI {
	t.Helper()
	a := &AuditAPI{token: token}
	secondary := false
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/orgs/"+org+"/audit-log" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+a.token {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`)
			return
		}
		limited, delay := a.admit()
		if limited {
			a.mu.Lock()
			secondary = !secondary
			sec := secondary
			a.mu.Unlock()
			if sec {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"message":"You have exceeded a secondary rate limit."}`)
				return
			}
			w.Header().Set("X-RateLimit-Limit", "5000")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"message":"API rate limit exceeded for user."}`)
			return
		}
		time.Sleep(delay)
		q := r.URL.Query()
		if q.Get("order") != "asc" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprint(w, `{"message":"this fake serves order=asc only"}`)
			return
		}
		var since time.Time
		if p := q.Get("phrase"); p != "" {
			v, ok := strings.CutPrefix(p, "created:>=")
			var err error
			if since, err = time.Parse(time.RFC3339Nano, v); !ok || err != nil {
				w.WriteHeader(http.StatusUnprocessableEntity)
				fmt.Fprintf(w, `{"message":"unsupported phrase %q"}`, p)
				return
			}
		}
		perPage := 30
		if l := q.Get("per_page"); l != "" {
			perPage, _ = strconv.Atoi(l)
			perPage = min(max(perPage, 1), 100)
		}
		evs := a.page(since, q.Get("after"), perPage+1)
		more := len(evs) > perPage
		if more {
			evs = evs[:perPage]
		}
		out := make([]map[string]any, 0, len(evs))
		for _, e := range evs {
			out = append(out, e.withFields(map[string]any{"@timestamp": e.Time.UnixMilli(), "_document_id": e.ID,
				"action": "repo.create", "actor": "octocat", "created_at": e.Time.UnixMilli(), "org": org}))
		}
		if more {
			next := url.Values{}
			for k, v := range q {
				next[k] = v
			}
			next.Set("after", evs[len(evs)-1].ID)
			w.Header().Set("Link", "<http://"+r.Host+r.URL.Path+"?"+next.Encode()+`>; rel="next"`)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(a.Close)
	return a
}
