// Package cloudwatchparse parses CloudWatch Logs subscription payloads: one event per
// log event, with the payload's log group, log stream, owner and subscription filters
// under the names Filebeat's aws-cloudwatch input uses (aws.cloudwatch.*, cloud.*).
//
// A record may be the payload in any of the shapes it travels in: gzip- or
// zlib-compressed JSON (as Firehose delivers it after base64 decoding), the base64 text
// of that, the decoded JSON itself, a Lambda event {"awslogs":{"data":"<base64>"}}, a
// Kinesis event {"Records":[{"kinesis":{"data":"<base64>"}}, …]}, or a Firehose
// data-transformation event {"invocationId":…,"records":[{"recordId":…,"data":"<base64>"}]}.
// An S3 object that Firehose wrote without a transformation is several payloads back
// to back: concatenated gzip members, which inflate to concatenated JSON objects
// "{…}{…}"; each object is parsed on its own. CONTROL_MESSAGE payloads, CloudWatch's
// destination health checks, are skipped.
//
// With message_format set, each message is parsed further by that format and the
// CloudWatch fields are added to its events.
package cloudwatchparse

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/jsonscan"
)

const (
	// Name is the format's name in a source's `format`.
	Name = "cloudwatch_logs"
	// Dataset is the event.dataset of log events kept as text.
	Dataset = "aws.cloudwatch_logs"
)

// Format returns the cloudwatch_logs format without inner formats: message_format
// must stay empty. The component registry uses NewFormat.
func Format() parse.Format { return NewFormat(nil) }

// NewFormat returns the cloudwatch_logs format; lookup finds the format named by
// message_format. It is a function rather than an import so that this package does not
// depend on the formats it may wrap.
func NewFormat(lookup func(name string) (parse.Format, bool)) parse.Format {
	return parse.Format{
		Name:        Name,
		WholeRecord: true,
		Dataset:     Dataset,
		NewConfig:   func() parse.Config { return NewConfig() },
		New: func(c parse.Config) (parse.Parser, error) {
			cfg, ok := c.(*Config)
			if !ok {
				return nil, fmt.Errorf("%s: config is %T, want *cloudwatchparse.Config", Name, c)
			}
			var inner parse.Parser
			if cfg.MessageFormat != "" {
				var f parse.Format
				if lookup != nil {
					f, ok = lookup(cfg.MessageFormat)
				}
				if lookup == nil || !ok {
					return nil, fmt.Errorf("message_format: unknown format %q", cfg.MessageFormat)
				}
				icfg := f.NewConfig()
				if err := icfg.Validate(); err != nil {
					return nil, fmt.Errorf("message_format %q: %w", cfg.MessageFormat, err)
				}
				var err error
				if inner, err = f.New(icfg); err != nil {
					return nil, fmt.Errorf("message_format %q: %w", cfg.MessageFormat, err)
				}
			}
			return New(cfg, inner), nil
		},
	}
}

// New returns a parser using cfg, which must have passed Validate. inner, when not
// nil, parses each message.
func New(cfg *Config, inner parse.Parser) *Parser {
	return &Parser{maxBytes: cfg.MaxDecompressedBytes, inner: inner, innerName: cfg.MessageFormat}
}

// Parser is the CloudWatch Logs subscription parser. It reuses its buffers between
// records and is not safe for concurrent use.
type Parser struct {
	maxBytes  int64
	inner     parse.Parser
	innerName string

	br    bytes.Reader
	gz    *gzip.Reader
	zr    io.ReadCloser
	b64   [2][]byte // base64-decoded bytes, per nesting level
	zbuf  [2][]byte // decompressed bytes, per nesting level
	spare [2][]byte // the outer layer while a doubly compressed payload is inflated

	hdr     header
	filters []byte // subscription_filters of the current payload, as a JSON array
	ev      event.Event
	arena   []byte // decoded strings of the current log event
	wrap    innerEmitter
}

var _ parse.Parser = (*Parser)(nil)

type jstr struct {
	b   []byte
	esc bool
	set bool // present, even if empty
}

// header is what a payload or an envelope says besides its log events.
type header struct {
	messageType, owner, logGroup, logStream jstr
	policyLevel                             jstr
	filters, logEvents                      []byte // extents
	awslogsData                             jstr
	records                                 []byte // extent of a Kinesis Records array
	fhRecords                               []byte // extent of a Firehose records array
	payload                                 bool   // a payload key was seen
}

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	data, err := p.decode(rec, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	s := jsonscan.Scanner{Data: data}
	s.SkipWS()
	start := s.Pos
	if err := p.collect(&s, true); err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	switch c := s.Peek(); c {
	case 0:
		return unwrapEmit(p.dispatch(out))
	case '{':
		return p.concatenated(&s, start, out)
	default:
		return fmt.Errorf("%s: %w", Name, s.Errorf("unexpected %q after the JSON object", c))
	}
}

// dispatch emits what the object in p.hdr holds: a payload, or the payloads of a
// Lambda, Kinesis or Firehose envelope.
func (p *Parser) dispatch(out parse.Emitter) error {
	h := &p.hdr
	switch {
	case h.payload:
		return p.payload(out)
	case h.awslogsData.set:
		payload, err := p.decode(p.text(h.awslogsData), 1)
		if err != nil {
			return fmt.Errorf("%s: awslogs.data: %w", Name, err)
		}
		return p.nested(payload, out, "awslogs.data")
	case h.records != nil:
		return p.envelopeRecords(h.records, false, out)
	case h.fhRecords != nil:
		return p.envelopeRecords(h.fhRecords, true, out)
	}
	return fmt.Errorf("%s: not a CloudWatch Logs subscription payload: no messageType, logEvents, awslogs, Records or records", Name)
}

// concatenated handles JSON objects written back to back, "{…}{…}", which is what
// Firehose stores in S3 when a subscription filter feeds it and no transformation
// runs: each Firehose record is one gzip member holding one payload, and Firehose
// concatenates the records with no separator (decode inflates every member). The
// first object has been collected; s stands at the second. Each object stands alone:
// one that fails is rejected and the rest go on. A syntax error leaves no way to find
// the next object, so the rest of the record is rejected from there.
func (p *Parser) concatenated(s *jsonscan.Scanner, start int, out parse.Emitter) error {
	end := s.Pos
	for i := 0; ; i++ {
		if err := p.dispatch(out); err != nil {
			var ef emitFailed
			if errors.As(err, &ef) {
				return ef.err
			}
			out.Reject(s.Data[start:end], fmt.Errorf("%w (object %d at byte %d)", err, i, start))
		}
		c := s.Peek()
		if c == 0 {
			return nil
		}
		start = s.Pos
		if c != '{' {
			out.Reject(s.Data[start:], fmt.Errorf("%s: object %d at byte %d: not a JSON object (%q)", Name, i+1, start, c))
			return nil
		}
		if err := p.collect(s, true); err != nil {
			out.Reject(s.Data[start:], fmt.Errorf("%s: object %d at byte %d: %w", Name, i+1, start, err))
			return nil
		}
		end = s.Pos
	}
}

// nested parses a payload carried inside an envelope.
func (p *Parser) nested(payload []byte, out parse.Emitter, where string) error {
	s := jsonscan.Scanner{Data: payload}
	if err := p.collect(&s, false); err != nil {
		return fmt.Errorf("%s: %s: %w", Name, where, err)
	}
	if c := s.Peek(); c != 0 {
		return fmt.Errorf("%s: %s: %w", Name, where, s.Errorf("unexpected %q after the JSON object", c))
	}
	if !p.hdr.payload {
		return fmt.Errorf("%s: %s: not a CloudWatch Logs subscription payload", Name, where)
	}
	return p.payload(out)
}

// envelopeRecords walks the records of a Kinesis event (Records[].kinesis.data) or of
// a Firehose data-transformation event (records[].data), each carrying one payload as
// base64 gzip; a record that cannot be decoded is rejected alone. Firehose records
// that a transformation marked "Dropped" or "ProcessingFailed" (the response shape)
// are skipped.
func (p *Parser) envelopeRecords(records []byte, firehose bool, out parse.Emitter) error {
	s := jsonscan.Scanner{Data: records, Pos: 1} // records was validated and starts with '['
	first := true
	for i := 0; ; i++ {
		ok, err := s.NextElement(&first)
		if err != nil || !ok {
			return err
		}
		start := s.Pos
		var data, result jstr
		if firehose {
			err = s.Members(1, func(k []byte) error {
				switch string(k) {
				case "data":
					return scalar(&s, &data)
				case "result":
					return scalar(&s, &result)
				}
				return s.Skip(2)
			})
		} else {
			err = s.Members(1, func(k []byte) error {
				if string(k) != "kinesis" {
					return s.Skip(2)
				}
				return s.Members(2, func(k []byte) error {
					if string(k) == "data" {
						return scalar(&s, &data)
					}
					return s.Skip(3)
				})
			})
		}
		if err != nil {
			return err
		}
		entry := s.Data[start:s.Pos]
		array, field := "Records", "].kinesis.data"
		if firehose {
			array, field = "records", "].data"
		}
		if entry[0] != '{' {
			out.Reject(entry, fmt.Errorf("%s: %s[%d]: not a JSON object", Name, array, i))
			continue
		}
		where := array + "[" + strconv.Itoa(i) + field
		switch string(result.b) {
		case "Dropped":
			out.Skip("firehose_dropped")
			continue
		case "ProcessingFailed":
			out.Skip("firehose_processing_failed")
			continue
		}
		if !data.set {
			out.Reject(entry, fmt.Errorf("%s: %s: missing", Name, where))
			continue
		}
		payload, err := p.decode(p.text(data), 1)
		if err == nil {
			err = p.nested(payload, out, where)
		} else {
			err = fmt.Errorf("%s: %s: %w", Name, where, err)
		}
		if errors.As(err, new(emitFailed)) {
			return err // Parse unwraps it
		}
		if err != nil {
			out.Reject(entry, err)
		}
	}
}

// text returns the decoded text of a string, borrowing the input when it has no
// escapes. Decoded text lives in the arena until the next log event.
func (p *Parser) text(v jstr) []byte {
	if !v.esc {
		return v.b
	}
	start := len(p.arena)
	p.arena = jsonscan.AppendUnescaped(p.arena, v.b)
	return p.arena[start:len(p.arena):len(p.arena)]
}

// decode turns one layer of transport encoding (base64, gzip, zlib, in any sensible
// combination) into JSON text. lvl selects the buffers, so that a payload decoded from
// an envelope does not overwrite the envelope.
func (p *Parser) decode(b []byte, lvl int) ([]byte, error) {
	b = bytes.TrimSpace(b)
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if len(b) == 0 {
		return nil, errors.New("empty record")
	}
	if compressed(b) {
		return p.inflateAll(b, lvl)
	}
	if b[0] == '{' || b[0] == '[' {
		return b, nil
	}
	enc := base64.StdEncoding
	if b[len(b)-1] != '=' && len(b)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	buf := slices.Grow(p.b64[lvl][:0], enc.DecodedLen(len(b)))
	n, err := enc.Decode(buf[:cap(buf)], b)
	p.b64[lvl] = buf
	if err != nil {
		return nil, fmt.Errorf("not JSON, gzip, zlib or base64 (%v)", err)
	}
	d := buf[:n]
	if compressed(d) {
		return p.inflateAll(d, lvl)
	}
	if t := bytes.TrimSpace(d); len(t) > 0 && t[0] == '{' {
		return t, nil
	}
	return nil, errors.New("base64 data is neither gzip, zlib nor JSON")
}

func compressed(b []byte) bool {
	return isGzip(b) || isZlib(b)
}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// isZlib checks the RFC 1950 header: deflate with a window of at most 32 KiB and a
// valid check value.
func isZlib(b []byte) bool {
	return len(b) >= 2 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}

// inflateAll inflates b, and once more when that gives compressed data again: a
// Firehose stream with its own GZIP compression turned on compresses records that
// CloudWatch Logs has already gzipped.
func (p *Parser) inflateAll(b []byte, lvl int) ([]byte, error) {
	d, err := p.inflate(b, lvl)
	if err != nil || !compressed(d) {
		return d, err
	}
	// d stays in the spare buffer while the inner layer is inflated into zbuf.
	p.zbuf[lvl], p.spare[lvl] = p.spare[lvl], p.zbuf[lvl]
	return p.inflate(d, lvl)
}

func (p *Parser) inflate(b []byte, lvl int) ([]byte, error) {
	p.br.Reset(b)
	var r io.Reader
	kind := "gzip"
	if isGzip(b) {
		var err error
		if p.gz == nil {
			p.gz, err = gzip.NewReader(&p.br)
		} else {
			err = p.gz.Reset(&p.br)
		}
		if err != nil {
			return nil, fmt.Errorf("gzip header: %w", err)
		}
		r = p.gz
	} else {
		kind = "zlib"
		var err error
		if p.zr == nil {
			p.zr, err = zlib.NewReader(&p.br)
		} else {
			err = p.zr.(zlib.Resetter).Reset(&p.br, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("zlib header: %w", err)
		}
		r = p.zr
	}
	buf := p.zbuf[lvl][:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(64<<10, len(buf)))
		}
		// Read at most one byte past the limit, enough to tell that it was crossed.
		limit := min(int64(cap(buf)), p.maxBytes+1)
		n, err := r.Read(buf[len(buf):limit])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > p.maxBytes {
			p.zbuf[lvl] = buf[:0]
			return nil, fmt.Errorf("%s: decompressed size exceeds max_decompressed_bytes (%d bytes)", kind, p.maxBytes)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			p.zbuf[lvl] = buf[:0]
			return nil, fmt.Errorf("%s: after %d decompressed bytes: %w", kind, len(buf), err)
		}
	}
	p.zbuf[lvl] = buf
	return buf, nil
}

// collect reads the top-level object of a payload or envelope into p.hdr, validating
// all of it, and leaves s after it. Envelope keys count only with envelope set.
func (p *Parser) collect(s *jsonscan.Scanner, envelope bool) error {
	h := &p.hdr
	*h = header{}
	if c := s.Peek(); c != '{' {
		if c == 0 {
			return s.Errorf("expected a JSON object, got end of input")
		}
		return s.Errorf("expected a JSON object, got %q", c)
	}
	s.Pos++
	first := true
	for {
		key, ok, err := s.NextMember(&first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "messageType":
			h.payload = true
			err = scalar(s, &h.messageType)
		case "owner":
			err = scalar(s, &h.owner)
		case "logGroup":
			err = scalar(s, &h.logGroup)
		case "logStream":
			err = scalar(s, &h.logStream)
		case "policyLevel":
			err = scalar(s, &h.policyLevel)
		case "subscriptionFilters":
			err = extent(s, &h.filters)
		case "logEvents":
			h.payload = true
			err = extent(s, &h.logEvents)
		case "awslogs":
			if !envelope {
				err = s.Skip(1)
				break
			}
			err = s.Members(1, func(k []byte) error {
				if string(k) == "data" {
					return scalar(s, &h.awslogsData)
				}
				return s.Skip(2)
			})
		case "Records":
			if envelope && s.Peek() == '[' {
				err = extent(s, &h.records)
			} else {
				err = s.Skip(1)
			}
		case "records":
			if envelope && s.Peek() == '[' {
				err = extent(s, &h.fhRecords)
			} else {
				err = s.Skip(1)
			}
		default:
			err = s.Skip(1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// payload emits the log events of the payload in p.hdr.
func (p *Parser) payload(out parse.Emitter) error {
	h := &p.hdr
	switch string(h.messageType.b) {
	case "CONTROL_MESSAGE":
		out.Skip("control_message")
		return nil
	case "DATA_MESSAGE":
	default:
		if !h.messageType.set {
			return fmt.Errorf("%s: payload has no messageType", Name)
		}
		return fmt.Errorf("%s: unknown messageType %q", Name, h.messageType.b)
	}
	for _, f := range [...]struct {
		name string
		v    jstr
	}{{"owner", h.owner}, {"logGroup", h.logGroup}, {"logStream", h.logStream}} {
		if len(f.v.b) == 0 {
			return fmt.Errorf("%s: invalid payload: %s is missing or empty", Name, f.name)
		}
	}
	if len(h.logEvents) == 0 || h.logEvents[0] != '[' {
		return fmt.Errorf("%s: invalid payload: logEvents is missing or not an array", Name)
	}
	p.buildFilters()

	s := jsonscan.Scanner{Data: h.logEvents, Pos: 1}
	first := true
	for i := 0; ; i++ {
		ok, err := s.NextElement(&first)
		if err != nil || !ok {
			return err // logEvents was validated: err is nil
		}
		start := s.Pos
		var id, ts, msg jstr
		err = s.Members(1, func(k []byte) error {
			switch string(k) {
			case "id":
				return scalar(&s, &id)
			case "timestamp":
				return scalar(&s, &ts)
			case "message":
				return scalar(&s, &msg)
			}
			return s.Skip(2)
		})
		if err != nil {
			return err
		}
		entry := s.Data[start:s.Pos]
		if entry[0] != '{' {
			out.Reject(entry, fmt.Errorf("%s: logEvents[%d]: not a JSON object", Name, i))
			continue
		}
		ms, err := strconv.ParseInt(string(ts.b), 10, 64)
		if ts.esc || err != nil || ms < -62135596800000 || ms > 253402300799999 {
			out.Reject(entry, fmt.Errorf("%s: logEvents[%d]: timestamp %q is not epoch milliseconds", Name, i, ts.b))
			continue
		}
		if !msg.set {
			out.Reject(entry, fmt.Errorf("%s: logEvents[%d]: missing message", Name, i))
			continue
		}
		if err := p.logEvent(i, id, time.UnixMilli(ms).UTC(), msg, out); err != nil {
			return emitFailed{err}
		}
	}
}

// emitFailed carries an emitter's error out to Parse, which returns it unchanged.
type emitFailed struct{ err error }

func (e emitFailed) Error() string { return e.err.Error() }

func unwrapEmit(err error) error {
	var ef emitFailed
	if errors.As(err, &ef) {
		return ef.err
	}
	return err
}

// buildFilters writes subscriptionFilters as a JSON array of strings.
func (p *Parser) buildFilters() {
	p.filters = p.filters[:0]
	v := p.hdr.filters
	if len(v) == 0 || v[0] != '[' {
		return
	}
	s := jsonscan.Scanner{Data: v, Pos: 1}
	p.filters = append(p.filters, '[')
	first, n := true, 0
	for {
		ok, err := s.NextElement(&first)
		if err != nil || !ok {
			break
		}
		var f jstr
		if err := scalar(&s, &f); err != nil {
			break
		}
		if len(f.b) == 0 {
			continue
		}
		if n > 0 {
			p.filters = append(p.filters, ',')
		}
		n++
		p.arena = p.arena[:0]
		p.filters = event.AppendStringBytes(p.filters, p.text(f))
	}
	p.filters = append(p.filters, ']')
	if n == 0 {
		p.filters = p.filters[:0]
	}
}

// logEvent emits one log event, or hands its message to the inner format. It returns
// only the emitter's errors.
func (p *Parser) logEvent(i int, id jstr, t time.Time, msg jstr, out parse.Emitter) error {
	p.arena = p.arena[:0]
	message := p.text(msg)
	if message == nil {
		message = []byte{}
	}
	if p.inner != nil {
		w := &p.wrap
		*w = innerEmitter{p: p, out: out, time: t, id: string(p.text(id)), message: message}
		err := p.inner.Parse(message, w)
		if w.failed != nil {
			return w.failed
		}
		if err != nil {
			out.Reject(message, fmt.Errorf("%s: logEvents[%d]: message_format %s: %w", Name, i, p.innerName, err))
		}
		return nil
	}
	e := &p.ev
	e.Reset()
	e.Time = t
	e.Dataset = Dataset
	if id.b != nil {
		e.ID = string(p.text(id))
	}
	e.Add("message", event.Bytes(message))
	e.Add("event.original", event.Bytes(message))
	p.addCommon(e, false)
	return out.Emit(e)
}

// addCommon adds the payload's fields. On an inner format's event, fields it set
// itself (its own cloud.account.id, say) win.
func (p *Parser) addCommon(e *event.Event, inner bool) {
	h := &p.hdr
	if !inner || !e.Has("cloud.provider") {
		e.Add("cloud.provider", event.String("aws"))
	}
	if !inner || !e.Has("cloud.account.id") {
		e.Add("cloud.account.id", event.Bytes(p.text(h.owner)))
	}
	e.Set("aws.cloudwatch.log_group", event.Bytes(p.text(h.logGroup)))
	e.Set("aws.cloudwatch.log_stream", event.Bytes(p.text(h.logStream)))
	e.Set("aws.cloudwatch.message_type", event.Bytes(h.messageType.b))
	if len(h.policyLevel.b) > 0 {
		e.Set("aws.cloudwatch.policy_level", event.Bytes(p.text(h.policyLevel)))
	}
	if len(p.filters) > 0 {
		e.Set("aws.cloudwatch.subscription_filters", event.Raw(p.filters))
	}
}

// innerEmitter passes an inner format's output on, completed with the CloudWatch
// fields, the log event's time and id where the inner event has none.
type innerEmitter struct {
	p       *Parser
	out     parse.Emitter
	time    time.Time
	id      string
	message []byte
	n       int   // events emitted for this message
	failed  error // the outer emitter's error, returned unchanged
}

func (w *innerEmitter) Emit(e *event.Event) error {
	if e.Time.IsZero() {
		e.Time = w.time
	}
	if e.ID == "" && w.id != "" {
		// Several events from one message need distinct ids.
		e.ID = w.id
		if w.n > 0 {
			e.ID = w.id + "-" + strconv.Itoa(w.n)
		}
	}
	w.n++
	if e.Dataset == "" {
		e.Dataset = Dataset
	}
	if !e.Has("event.original") {
		e.Add("event.original", event.Bytes(w.message))
	}
	w.p.addCommon(e, true)
	if err := w.out.Emit(e); err != nil {
		w.failed = err
		return err
	}
	return nil
}

func (w *innerEmitter) Reject(original []byte, reason error) { w.out.Reject(original, reason) }
func (w *innerEmitter) Skip(reason string)                   { w.out.Skip(reason) }

// scalar reads a scalar: strings keep their body, numbers and booleans their text;
// null and nested values leave dst unset.
func scalar(s *jsonscan.Scanner, dst *jstr) error {
	switch s.Peek() {
	case '"':
		b, esc, err := s.ReadString()
		if err == nil {
			*dst = jstr{b: b, esc: esc, set: true}
		}
		return err
	case 'n', '{', '[':
		_, _, err := s.SkipValue(1)
		return err
	}
	start, end, err := s.SkipValue(1)
	if err == nil {
		*dst = jstr{b: s.Data[start:end], set: true}
	}
	return err
}

// extent consumes a value and stores its bytes in dst unless it is null.
func extent(s *jsonscan.Scanner, dst *[]byte) error {
	start, end, err := s.SkipValue(1)
	if err == nil && !(end-start == 4 && s.Data[start] == 'n') {
		*dst = s.Data[start:end]
	}
	return err
}
