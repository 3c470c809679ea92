package slacksink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/sink/slacksink"
)

type harness struct {
	sink    *slacksink.Sink
	metrics *component.Metrics

	mu      sync.Mutex
	letters []component.Letter
}

func testConfig(url string) *slacksink.Config {
	c := slacksink.NewConfig()
	c.WebhookURL = url
	c.RateLimit = "unlimited"
	c.Retry = slacksink.Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	return c
}

func newHarness(t testing.TB, cfg *slacksink.Config) *harness {
	t.Helper()
	h := &harness{metrics: component.NewMetrics(prometheus.NewRegistry())}
	deps := component.SinkDeps{Name: "chat", Log: slog.New(slog.DiscardHandler), Metrics: h.metrics,
		DeadLetter: func(_ context.Context, letters ...component.Letter) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, l := range letters {
				l.Original = bytes.Clone(l.Original)
				h.letters = append(h.letters, l)
			}
			return nil
		}}
	s, err := slacksink.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	h.sink = s
	return h
}

func (h *harness) Letters() []component.Letter {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]component.Letter(nil), h.letters...)
}

func (h *harness) counter(v *prometheus.CounterVec, labels ...string) float64 {
	var m dto.Metric
	if err := v.WithLabelValues(append([]string{"sink", "chat"}, labels...)...).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// consume hands the sink one batch of alerts and returns a channel with its outcome.
func (h *harness) consume(t testing.TB, docs ...string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	var buf []byte
	for _, d := range docs {
		buf = append(buf, d...)
		buf = append(buf, '\n')
	}
	b := component.NewBatch("vigil.alert", 1, time.Now(), buf, len(docs), func(err error) { done <- err })
	if err := h.sink.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return done
}

func wait(t testing.TB, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the batch was not acknowledged within 10s")
		return nil
	}
}

// alertDoc is a vigil.alert document; user.name tries to inject a mention.
func alertDoc(id, ip string) string {
	return fmt.Sprintf(`{"@timestamp":"2026-12-07T10:00:00Z","event":{"id":%q,"kind":"alert","dataset":"vigil.alert","severity":73},`+
		`"rule":{"id":"vigil-ssh-brute","name":"SSH brute force","author":["Vigil SOC"],"description":"More than 20 failed SSH logins in 5 minutes & counting",`+
		`"reference":"https://attack.mitre.org/techniques/T1110/"},"tags":["auth","ssh"],"source":{"ip":%q},"user":{"name":"<!channel> bob"},`+
		`"url":{"domain":"login.example"}}`, id, ip)
}

func TestDeliversMessage(t *testing.T) {
	f := newFakeSlack(t)
	cfg := testConfig(f.URL())
	cfg.LinkTemplate = "https://kibana.example/app/discover#/?_a=(query:(query:'event.id:{{event.id}}'))"
	h := newHarness(t, cfg)
	if err := wait(t, h.consume(t, alertDoc("a1 'x'", "203.0.113.5"))); err != nil {
		t.Fatal(err)
	}
	msgs := f.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.alertID != "a1 'x'" {
		t.Errorf("X-Vigil-Alert-Id %q", m.alertID)
	}
	if !strings.HasPrefix(m.msg.Text, "[high (73)] SSH brute force — source.ip 203.0.113.5") {
		t.Errorf("text %q", m.msg.Text)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m.msg)
	all := buf.Bytes()
	for _, want := range []string{"Vigil SOC", "203.0.113.5", "login.example", "&lt;!channel&gt; bob", "&amp; counting", "event.id: `a1 'x'`", "tags: auth, ssh"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("message lacks %q: %s", want, all)
		}
	}
	if bytes.Contains(all, []byte("<!channel>")) {
		t.Errorf("a field injected a mention: %s", all)
	}
	var urls []string
	for _, b := range m.msg.Blocks {
		for _, e := range b.Elements {
			var btn slackButton
			if json.Unmarshal(e, &btn) == nil && btn.URL != "" {
				urls = append(urls, btn.URL)
			}
		}
	}
	wantLink := "https://kibana.example/app/discover#/?_a=(query:(query:'event.id:a1%20%27x%27'))"
	if len(urls) != 2 || urls[0] != wantLink || urls[1] != "https://attack.mitre.org/techniques/T1110/" {
		t.Errorf("buttons %q, want %q and the rule reference", urls, wantLink)
	}
	if got := h.counter(h.metrics.SentEvents); got != 1 {
		t.Errorf("sent %v", got)
	}
}

func TestPermanentAnswersDeadLetter(t *testing.T) {
	tests := []struct {
		name string
		give answer
	}{
		{"invalid_payload", answer{code: 400, body: "invalid_payload"}},
		{"action_prohibited", answer{code: 403, body: "action_prohibited"}},
		{"no_service", answer{code: 404, body: "no_service"}},
		{"channel_is_archived", answer{code: 410, body: "channel_is_archived"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t)
			f.Script(tt.give)
			h := newHarness(t, testConfig(f.URL()))
			doc := alertDoc("a1", "203.0.113.5")
			if err := wait(t, h.consume(t, doc)); err != nil {
				t.Fatalf("ack %v, want nil (dead-lettered)", err)
			}
			letters := h.Letters()
			if len(letters) != 1 || !strings.Contains(letters[0].Reason, tt.name) || string(letters[0].Original) != doc ||
				letters[0].ID != "sink:chat:a1" || letters[0].Stage != "sink" {
				t.Fatalf("letters %+v", letters)
			}
			if strings.Contains(letters[0].Reason, "s3cr3t") {
				t.Errorf("reason names the webhook URL: %s", letters[0].Reason)
			}
			if len(f.Attempts()) != 1 {
				t.Errorf("%d attempts, want 1: permanent answers are not retried", len(f.Attempts()))
			}
			if h.counter(h.metrics.DeadLettered, "sink") != 1 || h.counter(h.metrics.SentEvents) != 0 {
				t.Error("counters")
			}
		})
	}
}

func TestNotAnAlertDeadLetters(t *testing.T) {
	f := newFakeSlack(t)
	h := newHarness(t, testConfig(f.URL()))
	if err := wait(t, h.consume(t, `{"event":{"id":"e1"},"message":"no rule"}`, `not json`)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Letters()); n != 2 || len(f.Attempts()) != 0 {
		t.Errorf("%d letters, %d requests; want 2, 0", n, len(f.Attempts()))
	}
}

func TestRetriesTransientFailures(t *testing.T) {
	f := newFakeSlack(t)
	f.Script(answer{code: 500, body: "internal_error"}, answer{code: 503}, answer{code: 429, body: "rate_limited"})
	h := newHarness(t, testConfig(f.URL()))
	if err := wait(t, h.consume(t, alertDoc("a1", "203.0.113.5"))); err != nil {
		t.Fatal(err)
	}
	if len(f.Messages()) != 1 || len(f.Attempts()) != 4 {
		t.Fatalf("%d messages after %d attempts; want 1 after 4", len(f.Messages()), len(f.Attempts()))
	}
	if h.counter(h.metrics.Retries) != 3 || h.counter(h.metrics.Errors, "http_500") != 1 || h.counter(h.metrics.Errors, "http_429") != 1 {
		t.Error("retry counters")
	}
	if len(h.Letters()) != 0 {
		t.Error("dead letters")
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	f := newFakeSlack(t)
	f.Script(answer{code: 429, body: "rate_limited", retryAfter: 1})
	cfg := testConfig(f.URL())
	cfg.Retry.Max = 5 * time.Second
	h := newHarness(t, cfg)
	if err := wait(t, h.consume(t, alertDoc("a1", "203.0.113.5"))); err != nil {
		t.Fatal(err)
	}
	at := f.Attempts()
	if len(at) != 2 {
		t.Fatalf("%d attempts", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, before Retry-After: 1", gap)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFakeSlack(t)
	cfg := testConfig(f.URL())
	cfg.RateLimit, cfg.Burst = "20/s", 2
	h := newHarness(t, cfg)
	var docs []string
	for i := range 6 {
		docs = append(docs, alertDoc(fmt.Sprint("a", i), "203.0.113.5"))
	}
	if err := wait(t, h.consume(t, docs...)); err != nil {
		t.Fatal(err)
	}
	at := f.Attempts()
	if len(at) != 6 {
		t.Fatalf("%d attempts", len(at))
	}
	// A burst of 2, then one every 50ms: the sixth is 4×50ms after the limiter was
	// made, a little before the first request; 150ms leaves room for that.
	if span := at[5].Sub(at[0]); span < 150*time.Millisecond {
		t.Errorf("6 messages in %v, faster than 20/s with a burst of 2", span)
	}
}

func TestSuppression(t *testing.T) {
	f := newFakeSlack(t)
	cfg := testConfig(f.URL())
	cfg.Suppress.Window = 10 * time.Minute
	cfg.Suppress.Key = []string{"rule.id", "source.ip"}
	h := newHarness(t, cfg)
	if err := wait(t, h.consume(t, alertDoc("a1", "203.0.113.5"), alertDoc("a2", "203.0.113.5"), alertDoc("a3", "198.51.100.7"))); err != nil {
		t.Fatal(err)
	}
	// Every alert of a batch suppressed: acknowledged without a request.
	if err := wait(t, h.consume(t, alertDoc("a4", "203.0.113.5"))); err != nil {
		t.Fatal(err)
	}
	// a1 again, as a redelivered batch would bring it: sent, never suppressed.
	if err := wait(t, h.consume(t, alertDoc("a1", "203.0.113.5"))); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range f.Messages() {
		ids = append(ids, m.alertID)
	}
	if strings.Join(ids, ",") != "a1,a3,a1" {
		t.Errorf("sent %v, want a1,a3,a1", ids)
	}
	if got := h.counter(h.metrics.Discarded, "suppressed"); got != 2 {
		t.Errorf("suppressed %v, want 2", got)
	}
}

func TestStopHandsBackUndelivered(t *testing.T) {
	f := newFakeSlack(t)
	f.Always(&answer{code: 503})
	h := newHarness(t, testConfig(f.URL()))
	done := h.consume(t, alertDoc("a1", "203.0.113.5"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.sink.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err == nil {
		t.Fatal("acknowledged an alert Slack never took")
	}
	if len(h.Letters()) != 0 {
		t.Error("dead-lettered on a transient failure")
	}
	if err := h.sink.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopWithoutStart(t *testing.T) {
	s, err := slacksink.New(testConfig("https://hooks.slack.example/services/x"),
		component.SinkDeps{Name: "chat", Metrics: component.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.Describe(), "services") {
		t.Errorf("Describe shows the webhook's path: %s", s.Describe())
	}
}
