package pollsource

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
)

// maxBody bounds one page.
const maxBody = 64 << 20

// Source is the poll source.
type Source struct {
	cfg      *Config
	deps     component.SourceDeps
	log      *slog.Logger
	counters *component.Counters
	polls    *prometheus.CounterVec
	pages    prometheus.Counter
	lag      prometheus.Gauge

	records, idPath, timePath, tokenPath path
	dir                                  string
	client                               *http.Client
	auth                                 *authorizer

	st     *state
	cancel context.CancelFunc
	done   chan struct{}
	ready  atomic.Bool
	once   sync.Once
}

var _ component.Source = (*Source)(nil)

// New returns the source; the config must be valid.
func New(cfg *Config, deps component.SourceDeps) (*Source, error) {
	s := &Source{cfg: cfg, deps: deps, log: deps.Log, counters: deps.Metrics.For("source", deps.Name),
		dir: filepath.Join(deps.DataDir, "sources", deps.Name)}
	m := deps.Metrics
	s.polls = m.Polls.MustCurryWith(prometheus.Labels{"kind": "source", "component": deps.Name})
	s.pages = m.Pages.WithLabelValues("source", deps.Name)
	s.lag = m.CursorLag.WithLabelValues("source", deps.Name)
	var err error
	compile := func(p string) path {
		if p == "" || err != nil {
			return nil
		}
		var c path
		c, err = compilePath(p)
		return c
	}
	s.records, s.idPath, s.timePath = compile(cfg.Records), compile(cfg.IDPath), compile(cfg.Cursor.From)
	if cfg.Pagination.Type == "token" {
		s.tokenPath = compile(cfg.Pagination.TokenPath)
	}
	if err != nil {
		return nil, err
	}
	s.client = &http.Client{Timeout: cfg.RequestTimeout}
	s.auth = &authorizer{cfg: cfg.Auth, client: s.client}
	return s, nil
}

// Start reads the persisted cursor and starts polling: the first run at once.
func (s *Source) Start(ctx context.Context) error {
	if err := s.prepare(); err != nil {
		return fmt.Errorf("poll source %s: %w", s.deps.Name, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	s.ready.Store(true)
	go s.loop(runCtx)
	return nil
}

// prepare reads the persisted state.
func (s *Source) prepare() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	st, err := loadState(s.dir)
	if err != nil {
		return err
	}
	s.st = st
	s.updateLag()
	return nil
}

// Stop ends polling: a request in flight is abandoned, and a page not yet stored is
// fetched again by the next start.
func (s *Source) Stop(ctx context.Context) error {
	s.once.Do(func() {
		s.ready.Store(false)
		if s.cancel == nil {
			return
		}
		s.cancel()
		select {
		case <-s.done:
		case <-ctx.Done():
		}
	})
	return nil
}

// Ready implements component.Source.
func (s *Source) Ready() bool { return s.ready.Load() }

// Describe implements component.Source.
func (s *Source) Describe() string {
	u := s.cfg.URL
	if p, err := url.Parse(strings.ReplaceAll(u, "{cursor}", "CURSOR")); err == nil {
		u = p.Scheme + "://" + p.Host + p.Path
	}
	return fmt.Sprintf("poll %s every %s", u, s.cfg.Interval)
}

func (s *Source) loop(ctx context.Context) {
	defer close(s.done)
	for {
		outcome := "ok"
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			outcome = "error"
			if errors.Is(err, errPageCap) {
				outcome = "page_cap"
				s.log.Warn("poll source: page cap reached; the run goes on at the next interval", "max_pages", s.cfg.MaxPages)
			} else {
				s.counters.Error("poll")
				s.log.Warn("poll source: run failed; retrying at the next interval", "error", err)
			}
		}
		s.polls.WithLabelValues(outcome).Inc()
		s.updateLag()
		wait := s.cfg.Interval
		if j := s.cfg.Jitter; j > 0 {
			wait += time.Duration((rand.Float64()*2 - 1) * j * float64(wait))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

var errPageCap = errors.New("page cap reached")

func (s *Source) cursor() time.Time {
	if !s.st.Cursor.IsZero() {
		return s.st.Cursor
	}
	t, _ := time.Parse(time.RFC3339Nano, s.cfg.Cursor.Initial)
	return t
}

func (s *Source) updateLag() {
	if s.timePath != nil {
		s.lag.Set(time.Since(s.cursor()).Seconds())
	}
}

// firstURL is the URL of a run's first page.
func (s *Source) firstURL() string {
	u := s.cfg.URL
	if s.timePath != nil {
		c := s.cursor().Add(-s.cfg.Cursor.Overlap).UTC()
		var v string
		switch s.cfg.Cursor.Format {
		case "unix":
			v = strconv.FormatInt(c.Unix(), 10)
		case "unix_ms":
			v = strconv.FormatInt(c.UnixMilli(), 10)
		default:
			v = c.Format(time.RFC3339Nano)
		}
		u = strings.ReplaceAll(u, "{cursor}", url.QueryEscape(v))
	}
	if s.cfg.Pagination.Type == "offset" {
		u = setParams(u, map[string]string{s.cfg.Pagination.OffsetParam: "0", s.cfg.Pagination.LimitParam: strconv.Itoa(s.cfg.Pagination.Limit)})
	}
	return u
}

// run fetches pages until the last one, storing each page's new records and then
// persisting where it is.
func (s *Source) run(ctx context.Context) error {
	started := time.Now()
	next, newest := s.firstURL(), s.cursor()
	if p := s.st.Pending; p != nil {
		// A run that a crash or the page cap interrupted goes on where it was.
		next, newest = p.Next, p.Max
	}
	for page := 0; ; page++ {
		if page == s.cfg.MaxPages {
			return errPageCap
		}
		body, hdr, err := s.fetch(ctx, next)
		if err != nil {
			return err
		}
		recs, err := s.records.records(body)
		if err != nil {
			s.counters.Error("bad_page")
			return fmt.Errorf("page %s: records at %s: %w", redactURL(next), s.cfg.Records, err)
		}
		s.counters.Received(len(recs), len(body))
		fresh := make([][]byte, 0, len(recs))
		ids := make(map[string]time.Time, len(recs))
		for _, r := range recs {
			t := started
			if s.timePath != nil {
				if rt, ok := s.recordTime(r); ok {
					t = rt
					if rt.After(newest) {
						newest = rt
					}
				}
			}
			id := ""
			if s.idPath != nil {
				id, _ = s.idPath.scalar(r)
			} else {
				sum := sha256.Sum256(r)
				id = "sha256:" + hex.EncodeToString(sum[:16])
			}
			if id != "" {
				_, seen := s.st.Seen[id]
				_, again := ids[id]
				if seen || again {
					s.counters.Discarded("duplicate", 1)
					continue
				}
				ids[id] = t
			}
			fresh = append(fresh, r)
		}
		if len(fresh) > 0 {
			if err := s.deps.Intake.Store(ctx, component.Records{Received: time.Now(), Records: fresh, ID: unitID(fresh)}); err != nil {
				return fmt.Errorf("storing %d records: %w", len(fresh), err)
			}
		}
		s.pages.Inc()
		for id, t := range ids {
			s.st.Seen[id] = t
		}
		following := ""
		if len(recs) > 0 {
			following = s.nextURL(next, hdr, body, len(recs))
		}
		if following == "" {
			// The run is complete: the cursor moves to the newest record stored.
			s.st.Cursor, s.st.Pending = newest, nil
			s.prune(started)
		} else {
			s.st.Pending = &pending{Next: following, Max: newest}
		}
		if err := s.st.save(s.dir); err != nil {
			s.counters.Error("cursor_write")
			return fmt.Errorf("persisting the cursor in %s: %w", s.dir, err)
		}
		if following == "" {
			return nil
		}
		next = following
	}
}

// prune forgets ids no later run can fetch again: older than the cursor less the
// overlap (the start of the next run's window); without a cursor, older than this
// run's start less the overlap.
func (s *Source) prune(started time.Time) {
	floor := started
	if s.timePath != nil {
		floor = s.st.Cursor
	}
	floor = floor.Add(-s.cfg.Cursor.Overlap - time.Second)
	for id, t := range s.st.Seen {
		if t.Before(floor) {
			delete(s.st.Seen, id)
		}
	}
}

// recordTime reads a record's time at cursor.from.
func (s *Source) recordTime(r json.RawMessage) (time.Time, bool) {
	v, err := s.timePath.scalar(r)
	if err != nil || v == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f > 1e11 {
			return time.UnixMilli(int64(f)), true
		}
		return time.Unix(0, int64(f*1e9)), true
	}
	return time.Time{}, false
}

// nextURL is the following page's URL, or "" at the last page.
func (s *Source) nextURL(cur string, hdr http.Header, body []byte, n int) string {
	p := s.cfg.Pagination
	switch p.Type {
	case "link":
		next := linkNext(hdr.Values("Link"))
		if next == "" {
			return ""
		}
		base, err1 := url.Parse(cur)
		ref, err2 := url.Parse(next)
		if err1 != nil || err2 != nil {
			return ""
		}
		return base.ResolveReference(ref).String()
	case "token":
		tok, _ := s.tokenPath.scalar(body)
		if tok == "" {
			return ""
		}
		return setParams(cur, map[string]string{p.TokenParam: tok})
	case "offset":
		if n < p.Limit {
			return ""
		}
		u, err := url.Parse(cur)
		if err != nil {
			return ""
		}
		off, _ := strconv.Atoi(u.Query().Get(p.OffsetParam))
		return setParams(cur, map[string]string{p.OffsetParam: strconv.Itoa(off + n)})
	}
	return ""
}

// linkNext finds the rel="next" target in Link header values (RFC 8288).
func linkNext(values []string) string {
	for _, v := range values {
		for _, link := range strings.Split(v, ",") {
			link = strings.TrimSpace(link)
			lt, gt := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
			if lt != 0 || gt < 0 {
				continue
			}
			for _, param := range strings.Split(link[gt+1:], ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(param), "=")
				if !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return link[1:gt]
					}
				}
			}
		}
	}
	return ""
}

func setParams(raw string, params map[string]string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// redactURL drops the query, which may carry tokens, from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad URL)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}

// unitID names a page's records for the stream's duplicate detection: the same
// records give the same ID.
func unitID(recs [][]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, r := range recs {
		binary.LittleEndian.PutUint64(n[:], uint64(len(r)))
		h.Write(n[:])
		h.Write(r)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// fetch GETs one page, retrying 429s, 5xx, rate-limit 403s and network errors.
func (s *Source) fetch(ctx context.Context, u string) ([]byte, http.Header, error) {
	backoff := s.cfg.RetryBackoff
	reauthed := false
	for attempt := 0; ; attempt++ {
		body, hdr, code, err := s.get(ctx, u)
		if err == nil && code/100 == 2 {
			return body, hdr, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		wait := time.Duration(0)
		switch {
		case err != nil:
			s.counters.Error("network")
		case code == http.StatusUnauthorized && !reauthed && s.auth.invalidate():
			// An OAuth token revoked or expired early: get a new one, once.
			reauthed = true
			continue
		case code == http.StatusTooManyRequests || (code == http.StatusForbidden && rateLimited(hdr, body)):
			s.counters.Error("rate_limited")
			wait = retryWait(hdr, time.Now())
			err = fmt.Errorf("GET %s: %d, rate limited", redactURL(u), code)
		case code >= 500:
			s.counters.Error("server_error")
			wait = retryWait(hdr, time.Now())
			err = fmt.Errorf("GET %s: %d: %s", redactURL(u), code, snippet(body))
		default:
			s.counters.Error("http_" + strconv.Itoa(code))
			return nil, nil, fmt.Errorf("GET %s: %d: %s", redactURL(u), code, snippet(body))
		}
		if attempt >= s.cfg.MaxRetries {
			return nil, nil, fmt.Errorf("giving up after %d retries: %w", attempt, err)
		}
		if wait <= 0 {
			wait = backoff + time.Duration(rand.Int64N(int64(backoff)/4+1))
			backoff = min(2*backoff, time.Minute)
		}
		wait = min(wait, s.cfg.MaxRetryWait)
		s.counters.Retry()
		s.log.Debug("poll source: retrying", "in", wait, "error", err)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (s *Source) get(ctx context.Context, u string) ([]byte, http.Header, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "vigil")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if err := s.auth.apply(ctx, req); err != nil {
		return nil, nil, 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, nil, 0, err
	}
	if len(body) > maxBody {
		return nil, nil, 0, fmt.Errorf("GET %s: page larger than %d bytes", redactURL(u), maxBody)
	}
	return body, resp.Header, resp.StatusCode, nil
}

// rateLimited tells a 403 that means "rate limited" (GitHub: X-RateLimit-Remaining
// 0 or Retry-After; Google: rateLimitExceeded) from a 403 that means "forbidden".
func rateLimited(h http.Header, body []byte) bool {
	return h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0" || h.Get("X-Rate-Limit-Remaining") == "0" ||
		strings.Contains(string(body), "rateLimitExceeded")
}

// retryWait is the wait a response asks for: Retry-After (seconds or an HTTP date),
// else the rate limit's reset time (X-RateLimit-Reset, X-Rate-Limit-Reset: Unix
// seconds); 0 when it asks for none.
func retryWait(h http.Header, now time.Time) time.Duration {
	if ra := h.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil {
			return time.Duration(max(secs, 0)) * time.Second
		}
		if t, err := http.ParseTime(ra); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	for _, k := range []string{"X-RateLimit-Reset", "X-Rate-Limit-Reset"} {
		if v := h.Get(k); v != "" {
			if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				// A reset already passed (clock skew) still gets a moment.
				return max(time.Unix(secs, 0).Sub(now), 100*time.Millisecond)
			}
		}
	}
	return 0
}
