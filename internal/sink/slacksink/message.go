package slacksink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vigil-sec/vigil/internal/sink/alert"
)

// Slack's documented limits on the blocks the sink uses.
const (
	maxHeader  = 150  // plain_text of a header block
	maxSection = 3000 // text of a section block
	maxField   = 2000 // one field of a section block
	maxFields  = 10   // fields of a section block
	maxURL     = 3000 // url of a button
	maxText    = 3000 // the message's text, kept short as it is the notification
)

type message struct {
	Text   string  `json:"text"`
	Blocks []block `json:"blocks"`
}

type block struct {
	Type     string    `json:"type"`
	Text     *textObj  `json:"text,omitempty"`
	Fields   []textObj `json:"fields,omitempty"`
	Elements []any     `json:"elements,omitempty"`
}

type textObj struct {
	Type  string `json:"type"` // plain_text or mrkdwn
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

type button struct {
	Type string  `json:"type"`
	Text textObj `json:"text"`
	URL  string  `json:"url"`
}

// message builds the Slack message of an alert: text (the notification and the
// fallback) and blocks — a header with severity and rule name, the rule, author,
// severity and key fields, the rule's description, a link button, and a context
// line with event.id, so that an alert posted twice is recognisable.
//
// Every value from the alert is escaped for mrkdwn (&, <, >), so a field such as
// user.name cannot inject a link or a mention into the message.
func (s *Sink) message(d alert.Doc) ([]byte, error) {
	get := func(p string) string { v, _ := d.Field(p); return v }
	rule := get("rule.name")
	if rule == "" {
		rule = get("rule.id")
	}
	if rule == "" {
		return nil, errors.New("alert has neither rule.name nor rule.id: not a vigil.alert document")
	}
	sev := severity(get("event.severity"))
	id := get("event.id")

	title := fmt.Sprintf("[%s] %s", sev, rule)
	text := title
	var keys []string
	fields := []textObj{mrkdwn("*Severity*\n" + escape(sev)), mrkdwn("*Rule*\n" + escape(rule))}
	if a := get("rule.author"); a != "" {
		fields = append(fields, mrkdwn("*Author*\n"+escape(a)))
	}
	for _, f := range s.cfg.Fields {
		v, ok := d.Field(f)
		if !ok || v == "" || len(fields) >= maxFields {
			continue
		}
		fields = append(fields, mrkdwn(truncate("*"+escape(f)+"*\n"+escape(v), maxField)))
		keys = append(keys, f+" "+v)
	}
	if len(keys) > 0 {
		text += " — " + strings.Join(keys, ", ")
	}
	m := message{Text: truncate(escape(text), maxText)}
	m.Blocks = append(m.Blocks,
		block{Type: "header", Text: &textObj{Type: "plain_text", Text: truncate(headerIcon(sev)+" "+title, maxHeader), Emoji: true}},
		block{Type: "section", Fields: fields})
	if desc := get("rule.description"); desc != "" {
		t := mrkdwn(truncate(escape(desc), maxSection))
		m.Blocks = append(m.Blocks, block{Type: "section", Text: &t})
	}
	var buttons []any
	if s.cfg.LinkTemplate != "" {
		if link, err := expand(s.cfg.LinkTemplate, d.Field); err == nil && len(link) <= maxURL {
			buttons = append(buttons, button{Type: "button", Text: textObj{Type: "plain_text", Text: "Open alert"}, URL: link})
		}
	}
	if ref := get("rule.reference"); strings.HasPrefix(ref, "https://") && len(ref) <= maxURL && !strings.Contains(ref, ", ") {
		buttons = append(buttons, button{Type: "button", Text: textObj{Type: "plain_text", Text: "Rule reference"}, URL: ref})
	}
	if len(buttons) > 0 {
		m.Blocks = append(m.Blocks, block{Type: "actions", Elements: buttons})
	}
	var ctx []string
	if id != "" {
		ctx = append(ctx, "event.id: `"+escape(id)+"`")
	}
	if tags := get("tags"); tags != "" {
		ctx = append(ctx, "tags: "+escape(tags))
	}
	if len(ctx) > 0 {
		m.Blocks = append(m.Blocks, block{Type: "context", Elements: []any{mrkdwn(truncate(strings.Join(ctx, " · "), maxSection))}})
	}
	// Without HTML escaping the message reads as sent; Slack takes either.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func mrkdwn(s string) textObj { return textObj{Type: "mrkdwn", Text: s} }

// severity names an ECS event.severity (0-100, as Elastic's detection rules use
// it: low 21, medium 47, high 73, critical 99) and keeps the number.
func severity(v string) string {
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		if v == "" {
			return "unknown"
		}
		return v
	}
	name := "low"
	switch {
	case n >= 74:
		name = "critical"
	case n >= 48:
		name = "high"
	case n >= 22:
		name = "medium"
	}
	return name + " (" + v + ")"
}

func headerIcon(sev string) string {
	switch {
	case strings.HasPrefix(sev, "critical"):
		return ":red_circle:"
	case strings.HasPrefix(sev, "high"):
		return ":large_orange_circle:"
	case strings.HasPrefix(sev, "medium"):
		return ":large_yellow_circle:"
	}
	return ":white_circle:"
}

// escape escapes the three characters Slack's mrkdwn reserves for links and
// mentions.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escape(s string) string { return escaper.Replace(s) }

// truncate cuts s to at most n characters (Slack counts characters), on a rune
// boundary, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
