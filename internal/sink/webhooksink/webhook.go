package webhooksink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/sink/alert"
	"github.com/vigil-sec/vigil/internal/sink/deliver"
	"github.com/vigil-sec/vigil/internal/sink/docscan"
)

// maxResponse bounds an answer read into memory (for the dead letter's reason).
const maxResponse = 4 << 10

// Headers of a webhook request.
const (
	HeaderSignature = "X-Vigil-Signature"
	HeaderTimestamp = "X-Vigil-Timestamp"
	HeaderAlertID   = "X-Vigil-Alert-Id"
)

// Sign returns the X-Vigil-Signature value of a body sent at timestamp ts (Unix
// seconds): "sha256=" and the hex HMAC-SHA256, keyed with secret, of ts, ".", and
// the body.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature as a receiver would: sig must be Sign's
// value for ts and body, and ts within tolerance of now.
func Verify(secret []byte, ts, sig string, body []byte, now time.Time, tolerance time.Duration) error {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Sub(time.Unix(n, 0)); d > tolerance || d < -tolerance {
		return errors.New("timestamp outside the tolerance: a replay, or clocks apart")
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return errors.New("signature mismatch")
	}
	return nil
}

// Sink posts alerts to a webhook.
//
// The delivery engine (deliver.Engine) batches, retries and settles; the sink
// supplies the protocol: frame copies each alert as it is, and send waits for the
// rate limiter, wraps the request's alerts (one object, or an array), signs and
// posts them. Suppression happens in Consume, before the engine sees the alerts.
type Sink struct {
	cfg      Config
	log      *slog.Logger
	counters *component.Counters
	engine   *deliver.Engine
	limiter  *rate.Limiter
	suppress *alert.Suppressor // nil without suppress.window
	stopped  atomic.Bool       // set by Stop: Consume then refuses even suppressed alerts
	secret   []byte
	client   *http.Client
	target   string // the URL, redacted, for Describe and logs
	now      func() time.Time
}

var _ component.Sink = (*Sink)(nil)

// New returns a webhook sink.
func New(cfg *Config, deps component.SinkDeps) (*Sink, error) {
	c := *cfg
	if err := c.Validate(); err != nil {
		return nil, err
	}
	lim, _ := alert.ParseRate(c.RateLimit) // validated
	u, _ := url.Parse(c.URL)
	// Logs name the endpoint without its query, which may hold a token.
	u.RawQuery, u.Fragment = "", ""
	s := &Sink{cfg: c, log: deps.Log, counters: deps.Metrics.For("sink", deps.Name),
		limiter: rate.NewLimiter(lim, c.Burst), suppress: alert.NewSuppressor(c.Suppress, nil),
		secret: []byte(c.Secret), target: u.Redacted(), now: time.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.engine = deliver.New(deliver.Config{Name: "webhook", Sink: deps.Name,
		MaxBytes: 4 << 20, MaxEvents: c.Batch, MaxWait: c.MaxWait, Overhead: 1,
		MaxInFlight: c.MaxInFlight, Backoff: deliver.Backoff(c.Retry),
		Log: s.log, Counters: s.counters, DeadLetter: deps.DeadLetter},
		deliver.Protocol{Frame: alert.Frame, Send: s.send})
	return s, nil
}

// Describe implements component.Sink.
func (s *Sink) Describe() string { return "webhook to " + s.target }

// Start implements component.Sink.
func (s *Sink) Start(context.Context) error {
	return s.engine.Start(func(context.Context) error {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = s.cfg.MaxInFlight + 1
		tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		if s.cfg.TLS.Enabled() {
			tc, err := s.cfg.TLS.TLSConfig()
			if err != nil {
				return err
			}
			tr.TLSClientConfig = tc
		}
		s.client = alert.HTTPClient(tr, s.cfg.RequestTimeout)
		return nil
	})
}

// Consume implements component.Sink: suppressed alerts are counted and dropped,
// the others handed to the engine.
func (s *Sink) Consume(ctx context.Context, b *component.Batch) error {
	return alert.Consume(ctx, s.engine, s.suppress, s.stopped.Load(), s.counters, b)
}

// Stop implements component.Sink: requests under way are delivered (retrying)
// until ctx's deadline, or handed back for redelivery.
func (s *Sink) Stop(ctx context.Context) error {
	s.stopped.Store(true)
	s.engine.Stop(ctx, func() { s.client.CloseIdleConnections() })
	return nil
}

var idPath = []string{"event.id"}

// payload turns the request's framed alerts into the body: the alert itself with
// batch: 1, else a JSON array; and the alerts' event.ids.
func (s *Sink) payload(framed []byte) ([]byte, []string) {
	var docs [][]byte
	var ids []string
	var v [1][]byte
	_ = event.EachLine(framed, func(doc []byte) error {
		docs = append(docs, doc)
		if docscan.Lookup(doc, idPath, v[:]) {
			if id, ok := docscan.StringValue(v[0]); ok && id != "" {
				ids = append(ids, id)
			}
		}
		return nil
	})
	if s.cfg.Batch == 1 && len(docs) == 1 {
		return docs[0], ids
	}
	out := make([]byte, 0, len(framed)+2)
	out = append(out, '[')
	for i, d := range docs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, d...)
	}
	return append(out, ']'), ids
}

// send is the engine's Send: one signed request.
func (s *Sink) send(ctx context.Context, framed []byte, r *deliver.Request) deliver.Result {
	body, ids := s.payload(framed)
	if err := s.limiter.Wait(ctx); err != nil {
		return deliver.Result{Outcome: deliver.Stopped}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return deliver.Result{Outcome: deliver.Stopped}
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vigil")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(s.secret, ts, body))
	if len(ids) > 0 {
		req.Header.Set(HeaderAlertID, strings.Join(ids, ","))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return deliver.Result{Outcome: deliver.Stopped}
		}
		s.counters.Error("connect")
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, whose query may hold a token
		}
		s.log.Warn("webhook: request failed (retrying)", "url", s.target, "err", err)
		return deliver.Result{Outcome: deliver.Retry}
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	code := resp.StatusCode
	s.counters.Request(strconv.Itoa(code))
	reason := fmt.Sprintf("webhook refused the alert: HTTP %d %s", code, snippet(strings.TrimSpace(string(answer))))
	retryAfter := deliver.RetryAfter(resp.Header.Get("Retry-After"))
	switch {
	case code >= 200 && code < 300:
		return deliver.Result{Outcome: deliver.Delivered}
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Warn("webhook: request failed (retrying)", "url", s.target, "answer", reason)
		return deliver.Result{Outcome: deliver.Retry, RetryAfter: retryAfter}
	case code >= 400:
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Error("webhook: alerts refused; sending them to the dead-letter stream", "url", s.target, "alerts", r.Len(), "answer", reason)
		if r.Len() > 1 {
			// Halved until the alert at fault is alone, which is then dead-lettered.
			return deliver.Result{Outcome: deliver.Split, Reason: reason}
		}
		return deliver.Result{Outcome: deliver.DeadLetter, Reason: reason}
	default:
		// 1xx/3xx (redirects are not followed): a misconfigured URL or proxy.
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Error("webhook: unexpected answer (retrying); check url", "url", s.target, "answer", reason)
		return deliver.Result{Outcome: deliver.Retry, RetryAfter: retryAfter}
	}
}

func snippet(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
