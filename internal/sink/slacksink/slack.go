package slacksink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/alert"
	"github.com/vigil-sec/vigil/internal/sink/deliver"
)

// maxResponse bounds a Slack answer read into memory ("ok", "invalid_payload").
const maxResponse = 4 << 10

// Sink posts alerts to a Slack incoming webhook, one message per alert.
//
// The delivery engine (deliver.Engine) holds, retries and settles; the sink
// supplies the protocol: frame copies each alert as it is (a request is one
// alert), and send waits for the rate limiter, builds the Slack message and posts
// it. Suppression happens in Consume, before the engine sees the alerts.
type Sink struct {
	cfg      Config
	log      *slog.Logger
	counters *component.Counters
	engine   *deliver.Engine
	limiter  *rate.Limiter
	suppress *alert.Suppressor // nil without suppress.window
	stopped  atomic.Bool       // set by Stop: Consume then refuses even suppressed alerts
	client   *http.Client
	host     string // the webhook's host, for Describe and logs; the URL is a secret
}

var _ component.Sink = (*Sink)(nil)

// New returns a slack sink.
func New(cfg *Config, deps component.SinkDeps) (*Sink, error) {
	c := *cfg
	if err := c.Validate(); err != nil {
		return nil, err
	}
	lim, _ := alert.ParseRate(c.RateLimit) // validated
	u, _ := url.Parse(c.WebhookURL)
	s := &Sink{cfg: c, log: deps.Log, counters: deps.Metrics.For("sink", deps.Name),
		limiter: rate.NewLimiter(lim, c.Burst), suppress: alert.NewSuppressor(c.Suppress, nil), host: u.Host}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// One alert per request and one request at a time: Slack takes one message
	// per second per webhook, and in order reads best.
	s.engine = deliver.New(deliver.Config{Name: "slack", Sink: deps.Name,
		MaxBytes: 1 << 20, MaxEvents: 1, MaxWait: 10 * time.Millisecond, Overhead: 1,
		MaxInFlight: 1, Backoff: deliver.Backoff(c.Retry),
		Log: s.log, Counters: s.counters, DeadLetter: deps.DeadLetter},
		deliver.Protocol{Frame: alert.Frame, Send: s.send})
	return s, nil
}

// Describe implements component.Sink.
func (s *Sink) Describe() string { return "slack incoming webhook on " + s.host }

// Start implements component.Sink.
func (s *Sink) Start(context.Context) error {
	return s.engine.Start(func(context.Context) error {
		s.client = alert.HTTPClient(http.DefaultTransport.(*http.Transport).Clone(), s.cfg.RequestTimeout)
		return nil
	})
}

// Consume implements component.Sink: suppressed alerts are counted and dropped,
// the others handed to the engine.
func (s *Sink) Consume(ctx context.Context, b *component.Batch) error {
	return alert.Consume(ctx, s.engine, s.suppress, s.stopped.Load(), s.counters, b)
}

// Stop implements component.Sink: the alert under way is delivered (retrying)
// until ctx's deadline, or handed back for redelivery.
func (s *Sink) Stop(ctx context.Context) error {
	s.stopped.Store(true)
	s.engine.Stop(ctx, func() { s.client.CloseIdleConnections() })
	return nil
}

// send is the engine's Send: one alert as one Slack message.
func (s *Sink) send(ctx context.Context, body []byte, _ *deliver.Request) deliver.Result {
	d, err := alert.Decode(bytes.TrimSpace(body))
	if err != nil {
		s.counters.Error("bad_alert")
		return deliver.Result{Outcome: deliver.DeadLetter, Reason: err.Error()}
	}
	msg, err := s.message(d)
	if err != nil {
		s.counters.Error("bad_alert")
		return deliver.Result{Outcome: deliver.DeadLetter, Reason: err.Error()}
	}
	if err := s.limiter.Wait(ctx); err != nil {
		return deliver.Result{Outcome: deliver.Stopped}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.WebhookURL, bytes.NewReader(msg))
	if err != nil {
		return deliver.Result{Outcome: deliver.DeadLetter, Reason: "cannot build the request"}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "vigil")
	if id, ok := d.Field("event.id"); ok {
		req.Header.Set("X-Vigil-Alert-Id", id)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return deliver.Result{Outcome: deliver.Stopped}
		}
		s.counters.Error("connect")
		// The url.Error names the URL, which holds the webhook's token.
		s.log.Warn("slack: request failed (retrying)", "host", s.host, "err", redact(err))
		return deliver.Result{Outcome: deliver.Retry}
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	code := resp.StatusCode
	s.counters.Request(strconv.Itoa(code))
	return s.classify(code, resp.Header, strings.TrimSpace(string(answer)))
}

// classify maps Slack's answer to an outcome, per its incoming-webhook contract.
func (s *Sink) classify(code int, h http.Header, answer string) deliver.Result {
	reason := fmt.Sprintf("Slack refused the alert: HTTP %d %s", code, snippet(answer))
	switch {
	case code == http.StatusOK:
		return deliver.Result{Outcome: deliver.Delivered}
	case code == http.StatusTooManyRequests:
		s.counters.Error("http_429")
		return deliver.Result{Outcome: deliver.Retry, RetryAfter: deliver.RetryAfter(h.Get("Retry-After"))}
	case code == http.StatusRequestTimeout || code >= 500:
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Warn("slack: request failed (retrying)", "host", s.host, "answer", reason)
		return deliver.Result{Outcome: deliver.Retry, RetryAfter: deliver.RetryAfter(h.Get("Retry-After"))}
	case code >= 400:
		// invalid_payload, no_service, channel_is_archived, action_prohibited,
		// invalid_token...: sending the same message again cannot succeed.
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Error("slack: alert refused; sending it to the dead-letter stream", "host", s.host, "answer", reason)
		return deliver.Result{Outcome: deliver.DeadLetter, Reason: reason}
	default:
		// 1xx/3xx (redirects are not followed): a misconfigured URL or proxy.
		s.counters.Error("http_" + strconv.Itoa(code))
		s.log.Error("slack: unexpected answer (retrying); check webhook_url", "host", s.host, "answer", reason)
		return deliver.Result{Outcome: deliver.Retry}
	}
}

// redact returns err's message without the URL a url.Error names, which holds
// the webhook's token.
func redact(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " [webhook_url]: " + ue.Err.Error()
	}
	return err.Error()
}

func snippet(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
