// Package dlq reads and replays the dead-letter stream (VIGIL_DLQ): a summary of what
// was rejected, by stage, source and reason; the letters themselves; and a replay that
// feeds the original records back into intake once a parser, a config or a schema is
// fixed. It works on an open *stream.Stream: the embedded store can be opened by one
// process only, so `vigil dlq` reaches it through the running node's admin API
// (api.go) rather than opening the store itself.
package dlq

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// Filter selects dead letters. The zero value selects all of them.
type Filter struct {
	// Stage is the stage that rejected the record ("decode", "parse", "sink", ...).
	Stage string
	// Source is the source that received the record.
	Source string
	// After keeps letters dead-lettered at or after this time.
	After time.Time
	// From is the first DLQ stream sequence to look at (0: the first there is); a
	// replay answers the sequence to continue from.
	From uint64
	// FromIndex skips the letters of message From before this index (letters are
	// stored in batches; a page of entries can end inside one).
	FromIndex int
	// UpTo is the last DLQ stream sequence to look at (0: the last there is). A
	// replay is bounded by the last sequence when it began, so that records dead-
	// lettered again by the replay itself are not replayed in a loop.
	UpTo uint64
}

// Validate checks the filter's names, so they cannot widen a subject filter.
func (f Filter) Validate() error {
	if f.Stage != "" && !validToken(f.Stage) {
		return fmt.Errorf("stage: %q is not a stage name (decode, parse, validate, intake, sink)", f.Stage)
	}
	if f.Source != "" && !validToken(f.Source) {
		return fmt.Errorf("source: %q is not a source name", f.Source)
	}
	if f.UpTo != 0 && f.From > f.UpTo {
		return fmt.Errorf("from: %d is after up_to %d", f.From, f.UpTo)
	}
	return nil
}

// validToken accepts one NATS subject token without wildcards or separators.
func validToken(s string) bool {
	if len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.' || c == '*' || c == '>' || c <= ' ' || c == 0x7f:
			return false
		}
	}
	return true
}

// Entry is one dead letter as `vigil dlq show` prints it.
type Entry struct {
	// Sequence is the DLQ stream sequence of the message that holds the letter;
	// Index its place in that message (letters are stored in batches).
	Sequence uint64 `json:"sequence"`
	Index    int    `json:"index,omitempty"`
	Stage    string `json:"stage"`
	Reason   string `json:"reason"`
	Source   string `json:"source"`
	Dataset  string `json:"dataset,omitempty"`
	Format   string `json:"format,omitempty"`
	// Time is when the record was received (Vigil-Received).
	Time time.Time `json:"time"`
	// DeadLettered is when the letter was stored in the DLQ.
	DeadLettered time.Time `json:"dead_lettered"`
	// Origin is "epoch:seq:index" of the record in the intake stream, when known; a
	// replay keeps it, so the record's events get the IDs they would have had.
	Origin string `json:"origin,omitempty"`
	// Original is the rejected bytes: as text when they are valid UTF-8, else
	// base64 with OriginalBase64 set.
	Original       string `json:"original"`
	OriginalBase64 bool   `json:"original_base64,omitempty"`
	// Size is the length of the original bytes.
	Size int `json:"size"`
}

// letter is a stored dead letter with what scanning and replay need.
type letter struct {
	seq      uint64
	stored   time.Time
	stage    string
	reason   string
	source   string
	dataset  string
	format   string
	received string // Vigil-Received as stored (Unix nanoseconds)
	origin   string
	msgID    string
	size     int
	data     []byte // nil when scanned headers-only
	// index is the letter's place among the count letters of its message.
	index, count int
	// processor is "index:type" of the processor that rejected the event, if any.
	processor string
}

func (l *letter) entry() Entry {
	e := Entry{Sequence: l.seq, Index: l.index, Stage: l.stage, Reason: l.reason, Source: l.source, Dataset: l.dataset,
		Format: l.format, DeadLettered: l.stored.UTC(), Origin: l.origin, Size: len(l.data)}
	if ns, err := strconv.ParseInt(l.received, 10, 64); err == nil {
		e.Time = time.Unix(0, ns).UTC()
	}
	if utf8.Valid(l.data) {
		e.Original = string(l.data)
	} else {
		e.Original, e.OriginalBase64 = base64.StdEncoding.EncodeToString(l.data), true
	}
	return e
}

// scanBatch is how many letters one pull request asks for.
const scanBatch = 256

// scanWait bounds one pull request; it only matters when letters are deleted while
// a scan runs (the scan then ends early instead of waiting for them).
const scanWait = 5 * time.Second

// scan calls fn for each letter that f selects, in stream order, until fn returns
// false or the letters present when the scan began are exhausted (complete). It
// reads through an ephemeral, unacknowledged consumer that it deletes again, so it
// leaves nothing behind and never disturbs the stream. headersOnly skips the bodies.
func scan(ctx context.Context, st *stream.Stream, f Filter, headersOnly bool, fn func(l *letter) bool) (complete bool, err error) {
	js := st.JetStream()
	cc := jetstream.ConsumerConfig{
		Description:       "vigil dlq scan",
		AckPolicy:         jetstream.AckNonePolicy,
		HeadersOnly:       headersOnly,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	}
	if f.Stage != "" {
		cc.FilterSubject = wire.DLQSubject(f.Stage)
	}
	switch {
	case f.From > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.From
	case !f.After.IsZero():
		after := f.After
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &after
	}
	cons, err := js.CreateConsumer(ctx, stream.DLQStream, cc)
	if err != nil {
		return false, fmt.Errorf("dlq: read %s: %w", stream.DLQStream, err)
	}
	info := cons.CachedInfo()
	defer func() {
		// A fresh context: the consumer goes even when ctx was cancelled; if this
		// fails, the server drops it after InactiveThreshold anyway.
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, stream.DLQStream, info.Name)
	}()
	// NumPending is a snapshot: reading exactly that many bounds the loop even while
	// new letters arrive.
	pending := info.NumPending
	for read := uint64(0); read < pending; {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		batch, err := cons.Fetch(int(min(scanBatch, pending-read)), jetstream.FetchMaxWait(scanWait))
		if err != nil {
			return false, fmt.Errorf("dlq: read %s: %w", stream.DLQStream, err)
		}
		got := 0
		stop := false
		for m := range batch.Messages() {
			got++
			if stop {
				continue // drain what was already delivered
			}
			ls, err := readLetters(ctx, st, m, headersOnly)
			if err != nil || len(ls) == 0 {
				continue
			}
			if f.UpTo != 0 && ls[0].seq > f.UpTo {
				stop, complete = true, true
				continue
			}
			if f.Source != "" && ls[0].source != f.Source {
				continue
			}
			if !f.After.IsZero() && ls[0].stored.Before(f.After) {
				continue
			}
			for _, l := range ls {
				if l.seq == f.From && l.index < f.FromIndex {
					continue
				}
				if !fn(l) {
					stop = true
					break
				}
			}
		}
		if stop {
			return complete, nil
		}
		if err := batch.Error(); err != nil {
			return false, fmt.Errorf("dlq: read %s: %w", stream.DLQStream, err)
		}
		if got == 0 {
			// Letters deleted since the scan began (another replay): nothing more.
			return true, nil
		}
		read += uint64(got)
	}
	return true, nil
}

// msgSizeHeader carries a message's body size on a headers-only delivery.
const msgSizeHeader = "Nats-Msg-Size"

// readLetters reads the letters of one DLQ message: one for a plain message, several
// for a batch (whose body a headers-only scan then fetches, since their reasons are
// in it).
func readLetters(ctx context.Context, st *stream.Stream, m jetstream.Msg, headersOnly bool) ([]*letter, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	h := m.Headers()
	if wire.LetterCount(h) == 1 && h.Get(wire.HeaderEncoding) != wire.EncodingLetters {
		l := &letter{
			seq: md.Sequence.Stream, stored: md.Timestamp, count: 1,
			stage:  wire.StageOf(m.Subject()),
			reason: h.Get(wire.HeaderReason), source: h.Get(wire.HeaderSource), dataset: h.Get(wire.HeaderDataset),
			format: h.Get(wire.HeaderFormat), received: h.Get(wire.HeaderReceived), origin: h.Get(wire.HeaderOrigin),
			msgID: h.Get(jetstream.MsgIDHeader), processor: h.Get(wire.HeaderProcessor),
		}
		if headersOnly {
			l.size, _ = strconv.Atoi(h.Get(msgSizeHeader))
		} else {
			l.data = m.Data()
			l.size = len(l.data)
		}
		return []*letter{l}, nil
	}
	body := m.Data()
	if headersOnly {
		s, err := st.JetStream().Stream(ctx, stream.DLQStream)
		if err != nil {
			return nil, err
		}
		raw, err := s.GetMsg(ctx, md.Sequence.Stream)
		if err != nil {
			return nil, err
		}
		body = raw.Data
	}
	cls, err := wire.ReadLetters(m.Subject(), h, body)
	if err != nil {
		return nil, err
	}
	out := make([]*letter, len(cls))
	for i, cl := range cls {
		out[i] = &letter{seq: md.Sequence.Stream, stored: md.Timestamp, index: i, count: len(cls),
			stage: cl.Stage, reason: cl.Reason, source: cl.Source, dataset: cl.Dataset, format: cl.Format,
			received: strconv.FormatInt(cl.Time.UnixNano(), 10), origin: cl.Origin, msgID: cl.ID,
			processor: cl.Processor, data: cl.Original, size: len(cl.Original)}
		if headersOnly {
			out[i].data = nil
		}
	}
	return out, nil
}

// componentLetter is l as the writer stores it.
func (l *letter) componentLetter() component.Letter {
	cl := component.Letter{Stage: l.stage, Reason: l.reason, Source: l.source, Dataset: l.dataset, Format: l.format,
		Origin: l.origin, Processor: l.processor, ID: l.msgID, Original: l.data, Time: l.stored}
	if ns, err := strconv.ParseInt(l.received, 10, 64); err == nil {
		cl.Time = time.Unix(0, ns)
	}
	return cl
}

// Group is one line of the summary: letters of one stage, source and reason.
type Group struct {
	Stage  string `json:"stage"`
	Source string `json:"source"`
	// Reason is the letters' reason with numbers masked ("line N: ..."), so that
	// one problem is one line however many records it hit.
	Reason string `json:"reason"`
	Count  int    `json:"count"`
	Bytes  int64  `json:"bytes"`
	// First and Last are when the first and last of them were dead-lettered.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Summary is what `vigil dlq list` prints.
type Summary struct {
	Groups []Group `json:"groups"`
	// Total is the number of letters selected.
	Total int `json:"total"`
	// LastSeq is the DLQ stream's last sequence when the summary was made; a replay
	// passes it as Filter.UpTo.
	LastSeq uint64 `json:"last_seq"`
}

// maxGroups bounds the summary's memory when reasons are unusually diverse.
const maxGroups = 10000

// Summarize counts the letters f selects by stage, source and reason, in the order
// each group was first seen.
func Summarize(ctx context.Context, st *stream.Stream, f Filter) (*Summary, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	last, err := lastSeq(ctx, st)
	if err != nil {
		return nil, err
	}
	sum := &Summary{LastSeq: last, Groups: []Group{}}
	index := map[[3]string]int{}
	_, err = scan(ctx, st, f, true, func(l *letter) bool {
		key := [3]string{l.stage, l.source, maskNumbers(l.reason)}
		i, ok := index[key]
		if !ok {
			if len(index) >= maxGroups {
				key[2] = "(other reasons)"
				i, ok = index[key]
			}
			if !ok {
				i = len(sum.Groups)
				index[key] = i
				sum.Groups = append(sum.Groups, Group{Stage: key[0], Source: key[1], Reason: key[2], First: l.stored.UTC()})
			}
		}
		g := &sum.Groups[i]
		g.Count++
		g.Bytes += int64(l.size)
		g.Last = l.stored.UTC()
		sum.Total++
		return true
	})
	if err != nil {
		return nil, err
	}
	return sum, nil
}

// Entries returns up to limit letters that f selects, oldest first.
func Entries(ctx context.Context, st *stream.Stream, f Filter, limit int) ([]Entry, error) {
	out := []Entry{}
	err := EachEntry(ctx, st, f, limit, func(e *Entry) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// EachEntry calls fn with each of up to limit letters that f selects, oldest first,
// as it reads them, and stops at fn's first error, which it returns. e is only valid
// during the call.
func EachEntry(ctx context.Context, st *stream.Stream, f Filter, limit int, fn func(e *Entry) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if limit <= 0 {
		return nil
	}
	n := 0
	var fnErr error
	_, err := scan(ctx, st, f, false, func(l *letter) bool {
		e := l.entry()
		if fnErr = fn(&e); fnErr != nil {
			return false
		}
		n++
		return n < limit
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// lastSeq is the DLQ stream's last sequence.
func lastSeq(ctx context.Context, st *stream.Stream) (uint64, error) {
	info, err := dlqInfo(ctx, st)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

func dlqInfo(ctx context.Context, st *stream.Stream) (*jetstream.StreamInfo, error) {
	s, err := st.JetStream().Stream(ctx, stream.DLQStream)
	if err != nil {
		return nil, fmt.Errorf("dlq: %s: %w", stream.DLQStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dlq: %s: %w", stream.DLQStream, err)
	}
	return info, nil
}

// maskNumbers replaces every run of digits that stands alone (not inside a word
// such as "s2" or "utf8") with "N", and cuts the reason to a readable length.
func maskNumbers(s string) string {
	const maxReason = 200
	var b strings.Builder
	b.Grow(min(len(s), maxReason))
	for i := 0; i < len(s) && b.Len() < maxReason; {
		c := s[i]
		if isDigit(c) && (i == 0 || !isWordByte(s[i-1])) {
			j := i
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j == len(s) || !isWordByte(s[j]) {
				b.WriteByte('N')
				i = j
				continue
			}
			b.WriteString(s[i:j])
			i = j
			continue
		}
		b.WriteByte(c)
		i++
	}
	out := b.String()
	if len(s) > 0 && b.Len() >= maxReason {
		out = strings.ToValidUTF8(out, "") + "…"
	}
	return out
}

func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isWordByte(c byte) bool { return isDigit(c) || c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
