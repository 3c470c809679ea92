package slacksink_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeSlack is an incoming webhook that follows Slack's documented contract: a
// POST of a JSON message with text and/or blocks is answered 200 "ok"; a body
// that is not such a message 400 "invalid_payload"; and scripted answers (429 with
// Retry-After, 5xx, 404 no_service, 410 channel_is_archived) come first when set.
type fakeSlack struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	script   []answer // answered first, in order
	always   *answer  // answered to every request when set
	messages []received
	attempts []time.Time
}

type answer struct {
	code       int
	body       string
	retryAfter int
}

type received struct {
	msg     slackMessage
	alertID string
	at      time.Time
}

// slackMessage is the subset of Slack's message payload the sink may send.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string            `json:"type"`
	Text     *slackText        `json:"text,omitempty"`
	Fields   []slackText       `json:"fields,omitempty"`
	Elements []json.RawMessage `json:"elements,omitempty"`
}

type slackText struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

type slackButton struct {
	Type string    `json:"type"`
	Text slackText `json:"text"`
	URL  string    `json:"url"`
}

func newFakeSlack(t testing.TB) *fakeSlack {
	f := &fakeSlack{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the webhook URL, with a token in its path as Slack's have.
func (f *fakeSlack) URL() string { return f.srv.URL + "/services/T000/B000/s3cr3tT0ken" }

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.attempts = append(f.attempts, time.Now())
	var a *answer
	switch {
	case len(f.script) > 0:
		a = &f.script[0]
		f.script = f.script[1:]
	case f.always != nil:
		a = f.always
	}
	f.mu.Unlock()
	if a != nil {
		if a.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(a.retryAfter))
		}
		w.WriteHeader(a.code)
		_, _ = io.WriteString(w, a.body)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/services/T000/B000/s3cr3tT0ken" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "no_service")
		return
	}
	msg, err := validate(body)
	if err != nil {
		f.t.Errorf("fake slack: invalid payload: %v\n%s", err, body)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "invalid_payload")
		return
	}
	f.mu.Lock()
	f.messages = append(f.messages, received{msg: msg, alertID: r.Header.Get("X-Vigil-Alert-Id"), at: time.Now()})
	f.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

// validate checks a message against Slack's documented shape and limits for the
// blocks the sink uses.
func validate(body []byte) (slackMessage, error) {
	var m slackMessage
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return m, err
	}
	if m.Text == "" && len(m.Blocks) == 0 {
		return m, fmt.Errorf("no text and no blocks")
	}
	if len(m.Blocks) > 50 {
		return m, fmt.Errorf("%d blocks", len(m.Blocks))
	}
	for i, b := range m.Blocks {
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || b.Text.Text == "" || len([]rune(b.Text.Text)) > 150 {
				return m, fmt.Errorf("block %d: header needs plain_text of 1 to 150 characters", i)
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				return m, fmt.Errorf("block %d: section without text or fields", i)
			}
			if b.Text != nil && (len([]rune(b.Text.Text)) > 3000 || b.Text.Text == "") {
				return m, fmt.Errorf("block %d: section text length", i)
			}
			if len(b.Fields) > 10 {
				return m, fmt.Errorf("block %d: %d fields", i, len(b.Fields))
			}
			for _, f := range b.Fields {
				if f.Text == "" || len([]rune(f.Text)) > 2000 || (f.Type != "mrkdwn" && f.Type != "plain_text") {
					return m, fmt.Errorf("block %d: bad field %+v", i, f)
				}
			}
		case "actions":
			if len(b.Elements) == 0 || len(b.Elements) > 25 {
				return m, fmt.Errorf("block %d: actions need 1 to 25 elements", i)
			}
			for _, e := range b.Elements {
				var btn slackButton
				if err := json.Unmarshal(e, &btn); err != nil || btn.Type != "button" || btn.Text.Type != "plain_text" ||
					btn.Text.Text == "" || len(btn.URL) > 3000 {
					return m, fmt.Errorf("block %d: bad button %s", i, e)
				}
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > 10 {
				return m, fmt.Errorf("block %d: context needs 1 to 10 elements", i)
			}
		default:
			return m, fmt.Errorf("block %d: unexpected type %q", i, b.Type)
		}
	}
	return m, nil
}

func (f *fakeSlack) Messages() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.messages...)
}

func (f *fakeSlack) Attempts() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.attempts...)
}

func (f *fakeSlack) Script(a ...answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, a...)
}

func (f *fakeSlack) Always(a *answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.always = a
}
