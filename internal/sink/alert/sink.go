package alert

import (
	"context"
	"net/http"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/deliver"
)

// Consume is the alert sinks' Consume: alerts sup suppresses are counted as
// discarded ("suppressed") and settled, the others handed to engine. A stopped sink
// hands everything to the engine, which refuses it. sup may be nil.
func Consume(ctx context.Context, engine *deliver.Engine, sup *Suppressor, stopped bool, counters *component.Counters, b *component.Batch) error {
	if stopped || sup == nil {
		return engine.Consume(ctx, b)
	}
	kept, n, dropped := sup.Filter(b.Docs)
	if dropped > 0 {
		counters.Discarded("suppressed", dropped)
	}
	if n == 0 {
		b.Done(nil)
		return nil
	}
	b.Docs, b.Count = kept, n
	return engine.Consume(ctx, b)
}

// Frame is the engine's Frame of the alert sinks: the alert as it is, a line of its
// own.
func Frame(body, doc []byte, _ *component.Batch) ([]byte, int) {
	at := len(body)
	body = append(body, doc...)
	body = append(body, '\n')
	return body, at
}

// HTTPClient is the client of an alert sink: timeout bounds a request, and a redirect
// is not followed, since it would send alerts somewhere not configured.
func HTTPClient(tr *http.Transport, timeout time.Duration) *http.Client {
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
