// Package wire is the format of what crosses the stream: the subjects of the intake,
// events and dead-letter streams, the headers on their messages, the messages
// themselves (built and read here and nowhere else), and one helper that publishes a
// set of messages and waits until the stream has acknowledged all of them.
//
// Three kinds of message:
//   - a raw batch on vigil.raw.<source>: records as a source stored them, each with
//     its length as a uvarint, S2-compressed (event.RawBatch);
//   - an event batch on vigil.events.<dataset>: NDJSON, one ECS document per line,
//     S2-compressed, framed by sinks without decoding;
//   - a dead letter on vigil.dlq.<stage>: the original bytes uncompressed (so `nats`
//     tools show them as they came), with stage, reason and provenance in headers.
package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
)

// Subject prefixes and the patterns the streams are declared with.
const (
	intakePrefix = "vigil.raw."
	eventsPrefix = "vigil.events."
	dlqPrefix    = "vigil.dlq."
	aggPrefix    = "vigil.agg."

	IntakeSubjects = intakePrefix + ">"
	EventsSubjects = eventsPrefix + ">"
	DLQSubjects    = dlqPrefix + ">"
	AggSubjects    = aggPrefix + ">"
)

// AggSubject is the subject of a threshold rule's aggregation samples.
func AggSubject(rule string) string { return aggPrefix + rule }

// RuleOf returns the rule of an aggregation subject.
func RuleOf(subject string) string { return strings.TrimPrefix(subject, aggPrefix) }

// AggMsg builds a message of count aggregation samples of rule: body is the samples,
// each uvarint-length-prefixed, uncompressed; the message carries them S2-compressed.
func AggMsg(rule string, count int, body []byte) *nats.Msg {
	msg := nats.NewMsg(AggSubject(rule))
	msg.Header.Set(HeaderEncoding, EncodingS2)
	msg.Header.Set(HeaderCount, strconv.Itoa(count))
	msg.Data = event.Compress(body)
	return msg
}

// ReadAgg returns the samples of an aggregation message, in a new buffer the caller
// owns, and calls fn with each (valid during the call).
func ReadAgg(body []byte, fn func(sample []byte) error) error {
	data, err := event.Decompress(nil, body)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return errors.New("aggregation samples: truncated")
		}
		if err := fn(data[k : k+int(n)]); err != nil {
			return err
		}
		data = data[k+int(n):]
	}
	return nil
}

// IntakeSubject is the subject of a source's raw batches.
func IntakeSubject(source string) string { return intakePrefix + source }

// EventsSubject is the subject of a dataset's event batches.
func EventsSubject(dataset string) string { return eventsPrefix + dataset }

// DLQSubject is the subject of a stage's dead letters.
func DLQSubject(stage string) string { return dlqPrefix + stage }

// DatasetOf returns the dataset of an events subject.
func DatasetOf(subject string) string { return strings.TrimPrefix(subject, eventsPrefix) }

// SourceOf returns the source of an intake subject.
func SourceOf(subject string) string { return strings.TrimPrefix(subject, intakePrefix) }

// StageOf returns the stage of a DLQ subject.
func StageOf(subject string) string { return strings.TrimPrefix(subject, dlqPrefix) }

// Header names carried on stream messages.
const (
	HeaderEncoding = "Vigil-Encoding" // "s2"; event batches: "s2", "gzip" or "zstd"
	HeaderSource   = "Vigil-Source"   // name of the source that received the records
	HeaderFormat   = "Vigil-Format"   // format of the records
	// HeaderFormatOverride, when "1", makes HeaderFormat win over the source's
	// configured format (text lines posted to a JSON source, a replay with --format).
	HeaderFormatOverride = "Vigil-Format-Override"
	HeaderDataset        = "Vigil-Dataset"   // dataset of the records or events
	HeaderReceived       = "Vigil-Received"  // receive time, Unix nanoseconds
	HeaderCount          = "Vigil-Count"     // number of records or events in the batch
	HeaderSize           = "Vigil-Size"      // event batch: bytes of its documents, uncompressed
	HeaderOrigin         = "Vigil-Origin"    // origin of a replayed record: "epoch:seq:index"
	HeaderStage          = "Vigil-Stage"     // DLQ: the stage that rejected the record
	HeaderReason         = "Vigil-Reason"    // DLQ: why
	HeaderProcessor      = "Vigil-Processor" // DLQ: "index:type" of the processor that rejected an event
	// HeaderFields is a JSON object of string fields processing adds to every event
	// of an intake batch (the S3 bucket and key of the records).
	HeaderFields = "Vigil-Fields"
	// HeaderRecordFields is a JSON array, one element per record of an intake batch
	// (an object of string fields, or null), added to that record's events.
	HeaderRecordFields = "Vigil-Record-Fields"
	// HeaderLines numbers the records of an intake batch by their line in the
	// source's object, as runs "first-last,first-last" (skipped empty lines make
	// gaps); its field name is in HeaderLineField.
	HeaderLines     = "Vigil-Lines"
	HeaderLineField = "Vigil-Line-Field"
	EncodingS2      = event.EncodingS2 // intake batches: always S2
)

// Raw is an intake message: a batch of records of one source.
type Raw struct {
	Source string
	Format string
	// FormatOverride makes Format win over the source's configured format.
	FormatOverride bool
	// Dataset, when set, is the dataset the records were sent for.
	Dataset  string
	Received time.Time
	Count    int
	// Origin is set on a replayed record: the position it was first stored at.
	Origin string
	// Body is the S2-compressed event.RawBatch.
	Body []byte
	// Fields, when set, are added to every event of the batch as strings.
	Fields map[string]string
	// RecordFields, when set, holds each record's own fields (Count elements).
	RecordFields []map[string]string
	// Lines, when set, is each record's line number, added as LineField.
	Lines     []int
	LineField string
}

// RawMsg builds the stream message of r.
func RawMsg(r Raw) *nats.Msg {
	msg := nats.NewMsg(IntakeSubject(r.Source))
	msg.Header.Set(HeaderEncoding, EncodingS2)
	if r.Format != "" {
		msg.Header.Set(HeaderFormat, r.Format)
	}
	if r.FormatOverride {
		msg.Header.Set(HeaderFormatOverride, "1")
	}
	if r.Dataset != "" {
		msg.Header.Set(HeaderDataset, r.Dataset)
	}
	msg.Header.Set(HeaderReceived, strconv.FormatInt(r.Received.UnixNano(), 10))
	msg.Header.Set(HeaderCount, strconv.Itoa(r.Count))
	if r.Origin != "" {
		msg.Header.Set(HeaderOrigin, r.Origin)
	}
	if len(r.Fields) > 0 {
		if b, err := json.Marshal(r.Fields); err == nil {
			msg.Header.Set(HeaderFields, string(b))
		}
	}
	if len(r.RecordFields) > 0 {
		if b, err := json.Marshal(r.RecordFields); err == nil {
			msg.Header.Set(HeaderRecordFields, string(b))
		}
	}
	if len(r.Lines) > 0 && r.LineField != "" {
		msg.Header.Set(HeaderLines, FormatLines(r.Lines))
		msg.Header.Set(HeaderLineField, r.LineField)
	}
	msg.Data = r.Body
	return msg
}

// FormatLines writes line numbers as runs: [1 2 3 5] is "1-3,5-5".
func FormatLines(lines []int) string {
	var b strings.Builder
	for i := 0; i < len(lines); {
		j := i
		for j+1 < len(lines) && lines[j+1] == lines[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(lines[i]))
		b.WriteByte('-')
		b.WriteString(strconv.Itoa(lines[j]))
		i = j + 1
	}
	return b.String()
}

// ParseLines reads FormatLines' runs, at most max numbers; nil when malformed.
func ParseLines(s string, max int) []int {
	var out []int
	for run := range strings.SplitSeq(s, ",") {
		a, b, ok := strings.Cut(run, "-")
		first, err1 := strconv.Atoi(a)
		last, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || first < 0 || last < first || len(out)+last-first+1 > max {
			return nil
		}
		for n := first; n <= last; n++ {
			out = append(out, n)
		}
	}
	return out
}

// ReadRaw reads an intake message. A missing or bad receive time reads as stored.
func ReadRaw(subject string, h nats.Header, body []byte, stored time.Time) Raw {
	r := Raw{Source: SourceOf(subject), Format: h.Get(HeaderFormat), FormatOverride: h.Get(HeaderFormatOverride) == "1",
		Dataset: h.Get(HeaderDataset), Origin: h.Get(HeaderOrigin), Body: body, Received: stored}
	if ns, err := strconv.ParseInt(h.Get(HeaderReceived), 10, 64); err == nil {
		r.Received = time.Unix(0, ns)
	}
	r.Count, _ = strconv.Atoi(h.Get(HeaderCount))
	if f := h.Get(HeaderFields); f != "" {
		_ = json.Unmarshal([]byte(f), &r.Fields) // metadata only: a bad header drops it
	}
	if f := h.Get(HeaderRecordFields); f != "" && r.Count > 0 {
		// Metadata only: a bad header, or one that does not match the count, drops it.
		var rf []map[string]string
		if json.Unmarshal([]byte(f), &rf) == nil && len(rf) == r.Count {
			r.RecordFields = rf
		}
	}
	if l := h.Get(HeaderLines); l != "" && r.Count > 0 {
		if lines := ParseLines(l, r.Count); len(lines) == r.Count {
			r.Lines, r.LineField = lines, h.Get(HeaderLineField)
		}
	}
	return r
}

// Events is an event batch: ECS documents of one dataset.
type Events struct {
	Dataset string
	// Source is the source the events came from (empty for mixed batches).
	Source string
	Count  int
	// Docs is NDJSON, one document per line, uncompressed.
	Docs []byte
	// Size is len(Docs), also when the documents are left compressed (ReadFrame).
	Size int
}

// EventsMsg builds the stream message of e, compressing its documents with S2.
func EventsMsg(e Events) *nats.Msg {
	e.Size = len(e.Docs)
	return EventsMsgCompressed(e, event.EncodingS2, event.Compress(e.Docs))
}

// EventsMsgCompressed builds the stream message of e whose documents (e.Size bytes)
// the caller has compressed into body in encoding enc (an event.FrameEncoder's);
// e.Docs is not read.
func EventsMsgCompressed(e Events, enc string, body []byte) *nats.Msg {
	msg := nats.NewMsg(EventsSubject(e.Dataset))
	msg.Header.Set(HeaderEncoding, enc)
	msg.Header.Set(HeaderDataset, e.Dataset)
	msg.Header.Set(HeaderCount, strconv.Itoa(e.Count))
	msg.Header.Set(HeaderSize, strconv.Itoa(e.Size))
	if e.Source != "" {
		msg.Header.Set(HeaderSource, e.Source)
	}
	msg.Data = body
	return msg
}

// ReadEvents reads an event batch, decompressing its documents into a new buffer
// the caller owns.
func ReadEvents(subject string, h nats.Header, body []byte) (Events, error) {
	var d event.FrameDecoder
	return ReadEventsInto(&d, nil, subject, h, body)
}

// ReadEventsInto is ReadEvents decompressing with d into dst's memory when it is
// large enough (else into a new buffer).
func ReadEventsInto(d *event.FrameDecoder, dst []byte, subject string, h nats.Header, body []byte) (Events, error) {
	e := readEventsHeader(subject, h)
	docs, err := d.Decode(dst, body, h.Get(HeaderEncoding))
	if err != nil {
		return e, err
	}
	e.Docs, e.Size = docs, len(docs)
	return e, nil
}

// ReadFrame reads an event batch's headers and, when its body is in encoding enc,
// returns the body as it is (with Size from the header; e.Docs stays nil) for a sink
// that writes frames of enc; ok is false for a body in another encoding.
func ReadFrame(enc, subject string, h nats.Header, body []byte) (e Events, frame []byte, ok bool) {
	if enc == "" || enc == event.EncodingS2 || h.Get(HeaderEncoding) != enc {
		return Events{}, nil, false
	}
	size, err := strconv.Atoi(h.Get(HeaderSize))
	if err != nil || size < 0 {
		return Events{}, nil, false
	}
	e = readEventsHeader(subject, h)
	e.Size = size
	return e, body, true
}

func readEventsHeader(subject string, h nats.Header) Events {
	e := Events{Dataset: DatasetOf(subject), Source: h.Get(HeaderSource)}
	e.Count, _ = strconv.Atoi(h.Get(HeaderCount))
	return e
}

// LetterMsg builds the stream message of a dead letter: headers describe it, the body
// is the original bytes.
func LetterMsg(l component.Letter) *nats.Msg {
	msg := nats.NewMsg(DLQSubject(l.Stage))
	msg.Header.Set(HeaderStage, l.Stage)
	msg.Header.Set(HeaderReason, truncate(l.Reason, 2048))
	msg.Header.Set(HeaderSource, l.Source)
	if l.Dataset != "" {
		msg.Header.Set(HeaderDataset, l.Dataset)
	}
	if l.Format != "" {
		msg.Header.Set(HeaderFormat, l.Format)
	}
	if l.Processor != "" {
		msg.Header.Set(HeaderProcessor, l.Processor)
	}
	t := l.Time
	if t.IsZero() {
		t = time.Now()
	}
	msg.Header.Set(HeaderReceived, strconv.FormatInt(t.UnixNano(), 10))
	if l.Origin != "" {
		msg.Header.Set(HeaderOrigin, l.Origin)
	}
	msg.Data = l.Original
	return msg
}

// ReadLetter reads a dead letter. Its ID is the message ID it was published with.
func ReadLetter(subject string, h nats.Header, body []byte) component.Letter {
	l := component.Letter{Stage: StageOf(subject), Reason: h.Get(HeaderReason), Source: h.Get(HeaderSource),
		Dataset: h.Get(HeaderDataset), Format: h.Get(HeaderFormat), Processor: h.Get(HeaderProcessor),
		Origin: h.Get(HeaderOrigin), Original: body, ID: h.Get(nats.MsgIdHdr)}
	if ns, err := strconv.ParseInt(h.Get(HeaderReceived), 10, 64); err == nil {
		l.Time = time.Unix(0, ns)
	}
	return l
}

// truncate keeps header values bounded and free of line breaks.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}

// FormatOrigin writes an origin as "epoch:seq:index".
func FormatOrigin(o event.Origin) string {
	return strconv.FormatInt(o.Epoch, 10) + ":" + strconv.FormatUint(o.Seq, 10) + ":" + strconv.FormatUint(uint64(o.Index), 10)
}

// ParseOrigin reads "epoch:seq:index".
func ParseOrigin(s string) (event.Origin, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return event.Origin{}, false
	}
	e, err1 := strconv.ParseInt(parts[0], 10, 64)
	q, err2 := strconv.ParseUint(parts[1], 10, 64)
	i, err3 := strconv.ParseUint(parts[2], 10, 32)
	if err1 != nil || err2 != nil || err3 != nil {
		return event.Origin{}, false
	}
	return event.Origin{Epoch: e, Seq: q, Index: uint32(i)}, true
}

// EncodingLetters marks a dead-letter message that carries several letters of one
// stage and source: its body is S2-compressed, each letter a uvarint-prefixed JSON
// head (its own reason, dataset, format, time, origin, processor and ID) followed by
// a uvarint-prefixed original. A message of one letter keeps the plain form, its
// original as the body, so `nats` tools show it as it came.
const EncodingLetters = "letters-s2"

// letterHead is what a batched letter carries besides its original.
type letterHead struct {
	Reason    string `json:"reason"`
	Dataset   string `json:"dataset,omitempty"`
	Format    string `json:"format,omitempty"`
	Time      int64  `json:"time"`
	Origin    string `json:"origin,omitempty"`
	Processor string `json:"processor,omitempty"`
	ID        string `json:"id,omitempty"`
}

// LettersMsg builds one dead-letter message for letters of one stage and source
// (the first letter's); with one letter it is LetterMsg.
func LettersMsg(letters []component.Letter) *nats.Msg {
	if len(letters) == 1 {
		return LetterMsg(letters[0])
	}
	first := letters[0]
	var body []byte
	for _, l := range letters {
		t := l.Time
		if t.IsZero() {
			t = time.Now()
		}
		head, _ := json.Marshal(letterHead{Reason: l.Reason, Dataset: l.Dataset, Format: l.Format, Time: t.UnixNano(),
			Origin: l.Origin, Processor: l.Processor, ID: l.ID})
		body = binary.AppendUvarint(body, uint64(len(head)))
		body = append(body, head...)
		body = binary.AppendUvarint(body, uint64(len(l.Original)))
		body = append(body, l.Original...)
	}
	msg := nats.NewMsg(DLQSubject(first.Stage))
	msg.Header.Set(HeaderEncoding, EncodingLetters)
	msg.Header.Set(HeaderStage, first.Stage)
	msg.Header.Set(HeaderSource, first.Source)
	msg.Header.Set(HeaderCount, strconv.Itoa(len(letters)))
	// The first reason, so that headers-only tools see what the batch is about.
	msg.Header.Set(HeaderReason, truncate(first.Reason, 2048))
	msg.Header.Set(HeaderReceived, strconv.FormatInt(first.Time.UnixNano(), 10))
	msg.Data = event.Compress(body)
	return msg
}

// LetterCount returns how many letters a dead-letter message carries.
func LetterCount(h nats.Header) int {
	if h.Get(HeaderEncoding) != EncodingLetters {
		return 1
	}
	n, err := strconv.Atoi(h.Get(HeaderCount))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// ReadLetters reads the letters of a dead-letter message, batched or plain. The
// originals are fresh copies the caller owns.
func ReadLetters(subject string, h nats.Header, body []byte) ([]component.Letter, error) {
	if h.Get(HeaderEncoding) != EncodingLetters {
		l := ReadLetter(subject, h, body)
		return []component.Letter{l}, nil
	}
	data, err := event.Decompress(nil, body)
	if err != nil {
		return nil, fmt.Errorf("dead-letter batch: %w", err)
	}
	stage, source := StageOf(subject), h.Get(HeaderSource)
	var out []component.Letter
	for len(data) > 0 {
		head, rest, err := chunk(data)
		if err != nil {
			return out, err
		}
		orig, rest, err := chunk(rest)
		if err != nil {
			return out, err
		}
		data = rest
		var lh letterHead
		if err := json.Unmarshal(head, &lh); err != nil {
			return out, fmt.Errorf("dead-letter batch: letter %d: %w", len(out), err)
		}
		out = append(out, component.Letter{Stage: stage, Source: source, Reason: lh.Reason, Dataset: lh.Dataset,
			Format: lh.Format, Time: time.Unix(0, lh.Time), Origin: lh.Origin, Processor: lh.Processor, ID: lh.ID,
			Original: orig})
	}
	return out, nil
}

// chunk splits a uvarint-prefixed chunk off data.
func chunk(data []byte) (c, rest []byte, err error) {
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)-k) {
		return nil, nil, errors.New("dead-letter batch: truncated")
	}
	return data[k : k+int(n) : k+int(n)], data[k+int(n):], nil
}

// EventsID is the JetStream message ID of the chunk-th event batch of dataset that
// processing made from intake message seq of the intake stream epoch:
// "epoch:seq:dataset:chunk". Re-processing the same intake message yields the same
// IDs, so the stream drops a re-publish inside its duplicate window and the sink
// runner recognises one after it (see ParseEventsID).
func EventsID(epoch int64, seq uint64, dataset string, chunk int) string {
	return strconv.FormatInt(epoch, 10) + ":" + strconv.FormatUint(seq, 10) + ":" + dataset + ":" + strconv.Itoa(chunk)
}

// ParseEventsID returns the intake stream epoch and sequence an EventsID names.
func ParseEventsID(id string) (epoch int64, seq uint64, ok bool) {
	e, rest, ok1 := strings.Cut(id, ":")
	q, rest, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || rest == "" {
		return 0, 0, false
	}
	epoch, err1 := strconv.ParseInt(e, 10, 64)
	seq, err2 := strconv.ParseUint(q, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return epoch, seq, true
}
