package slacksink

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/vigil-sec/vigil/internal/sink/alert"
)

// FuzzMessage checks that any alert a rule could produce (its fields come from
// untrusted events) becomes a message within Slack's limits, without a raw "<"
// that would make a mention or a link, or the alert is refused with an error.
func FuzzMessage(f *testing.F) {
	for _, seed := range []string{
		`{"event":{"id":"a1","severity":73},"rule":{"name":"SSH brute force","author":["SOC"]},"source":{"ip":"203.0.113.5"}}`,
		`{"rule.id":"r1","user.name":"<!channel> <https://evil|click>","event.severity":"high"}`,
		`{"rule":{"name":"` + string(make([]byte, 400)) + `"}}`,
		`{"rule":{"id":""}}`,
		`{"rule":{"name":"x","reference":["https://a","https://b"]},"tags":[1,null,{"a":"<b>"}]}`,
	} {
		f.Add(seed)
	}
	c := NewConfig()
	c.LinkTemplate = "https://kibana.example/app/discover#/?_a=(query:(query:'event.id:{{event.id}}'))"
	s := &Sink{cfg: *c}
	f.Fuzz(func(t *testing.T, doc string) {
		d, err := alert.Decode([]byte(doc))
		if err != nil {
			return
		}
		out, err := s.message(d)
		if err != nil {
			return
		}
		var m message
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("not JSON: %v: %s", err, out)
		}
		if m.Text == "" || utf8.RuneCountInString(m.Text) > maxText {
			t.Fatalf("text of %d characters", utf8.RuneCountInString(m.Text))
		}
		for _, b := range m.Blocks {
			if b.Type == "header" && utf8.RuneCountInString(b.Text.Text) > maxHeader {
				t.Fatalf("header of %d characters", utf8.RuneCountInString(b.Text.Text))
			}
			if b.Type == "section" && b.Text != nil && (b.Text.Text == "" || utf8.RuneCountInString(b.Text.Text) > maxSection) {
				t.Fatal("section text length")
			}
			if len(b.Fields) > maxFields {
				t.Fatalf("%d fields", len(b.Fields))
			}
			for _, fl := range b.Fields {
				if utf8.RuneCountInString(fl.Text) > maxField {
					t.Fatal("field length")
				}
			}
		}
		for _, b := range m.Blocks {
			for _, tx := range append(b.Fields, deref(b.Text)) {
				if tx.Type == "mrkdwn" && containsAny(tx.Text, "<>") {
					t.Fatalf("unescaped mrkdwn: %q", tx.Text)
				}
			}
		}
	})
}

func deref(t *textObj) textObj {
	if t == nil {
		return textObj{}
	}
	return *t
}

func containsAny(s, chars string) bool {
	for _, c := range chars {
		for _, r := range s {
			if r == c {
				return true
			}
		}
	}
	return false
}
