// Package cloudfrontparse parses Amazon CloudFront standard (access) logs into ECS
// events, with the field names of Elastic's AWS integration (data stream
// aws.cloudfront_logs). Lines are tab-separated W3C extended log records; the
// "#Fields:" header gives the column order, which the parser remembers between records.
package cloudfrontparse

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/fieldscan"
)

// Dataset is the event.dataset of the events, the data stream Elastic's AWS
// integration uses for CloudFront logs.
const Dataset = "aws.cloudfront_logs"

// col identifies a known CloudFront column.
type col uint8

const (
	cUnknown col = iota
	cDate
	cTime
	cEdgeLocation
	cScBytes
	cClientIP
	cMethod
	cHost
	cURIStem
	cStatus
	cReferer
	cUserAgent
	cURIQuery
	cCookie
	cEdgeResultType
	cEdgeRequestID
	cHostHeader
	cProtocol
	cCsBytes
	cTimeTaken
	cForwardedFor
	cSSLProtocol
	cSSLCipher
	cEdgeResponseResultType
	cProtocolVersion
	cFLEStatus
	cFLEEncryptedFields
	cClientPort
	cTimeToFirstByte
	cEdgeDetailedResultType
	cContentType
	cContentLen
	cRangeStart
	cRangeEnd
	numCols
)

// colNames are the W3C names CloudFront writes in "#Fields:" for each column.
var colNames = [numCols]string{
	cDate: "date", cTime: "time", cEdgeLocation: "x-edge-location", cScBytes: "sc-bytes",
	cClientIP: "c-ip", cMethod: "cs-method", cHost: "cs(Host)", cURIStem: "cs-uri-stem",
	cStatus: "sc-status", cReferer: "cs(Referer)", cUserAgent: "cs(User-Agent)",
	cURIQuery: "cs-uri-query", cCookie: "cs(Cookie)", cEdgeResultType: "x-edge-result-type",
	cEdgeRequestID: "x-edge-request-id", cHostHeader: "x-host-header", cProtocol: "cs-protocol",
	cCsBytes: "cs-bytes", cTimeTaken: "time-taken", cForwardedFor: "x-forwarded-for",
	cSSLProtocol: "ssl-protocol", cSSLCipher: "ssl-cipher",
	cEdgeResponseResultType: "x-edge-response-result-type", cProtocolVersion: "cs-protocol-version",
	cFLEStatus: "fle-status", cFLEEncryptedFields: "fle-encrypted-fields", cClientPort: "c-port",
	cTimeToFirstByte: "time-to-first-byte", cEdgeDetailedResultType: "x-edge-detailed-result-type",
	cContentType: "sc-content-type", cContentLen: "sc-content-len", cRangeStart: "sc-range-start",
	cRangeEnd: "sc-range-end",
}

// defaultCols is the layout of version 1.0 files: the 33 columns in colNames order.
func defaultCols() []column {
	cols := make([]column, 0, numCols-1)
	for c := cDate; c < numCols; c++ {
		cols = append(cols, column{id: c})
	}
	return cols
}

// column is one position of the layout: a known column, or an unknown one kept under
// aws.cloudfront.<name> (its key is built once, when the header is read).
type column struct {
	id  col
	key string
}

func columnFor(name string) column {
	for c := cDate; c < numCols; c++ {
		if colNames[c] == name {
			return column{id: c}
		}
	}
	// A column added by a later CloudFront version: keep it, with a name that is a
	// valid ECS leaf ("cs(Accept-Encoding)" → "cs_accept_encoding").
	var b strings.Builder
	b.WriteString("aws.cloudfront.")
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ')':
		default:
			b.WriteByte('_')
		}
	}
	return column{key: b.String()}
}

// Parser parses one line per record. It remembers the column layout of the last
// "#Fields:" header, so it is not safe for concurrent use.
type Parser struct {
	cols    []column // current layout
	deflt   []column // layout when no header has been seen
	vals    [numCols][]byte
	extra   []int    // positions of the current line's columns with unknown names
	parts   [][]byte // the current line's fields
	ev      event.Event
	scratch []byte // decoded user agent, url.full and JSON arrays the event borrows
}

// New returns a parser with the given options.
func New(cfg Config) *Parser {
	p := &Parser{scratch: make([]byte, 0, 1024)}
	if len(cfg.Fields) > 0 {
		for _, f := range cfg.Fields {
			p.deflt = append(p.deflt, columnFor(f))
		}
	} else {
		p.deflt = defaultCols()
	}
	p.cols = p.deflt
	return p
}

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	line := bytes.TrimRight(rec, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 {
		out.Skip("blank_line")
		return nil
	}
	if line[0] == '#' {
		if rest, ok := bytes.CutPrefix(line, []byte("#Fields:")); ok {
			names := strings.Fields(string(rest))
			if len(names) == 0 {
				return fmt.Errorf("cloudfront: #Fields header lists no fields")
			}
			cols := make([]column, 0, len(names))
			for _, n := range names {
				cols = append(cols, columnFor(n))
			}
			p.cols = cols
		}
		out.Skip("header")
		return nil
	}

	p.parts = p.parts[:0]
	for len(line) > 0 {
		i := bytes.IndexByte(line, '\t')
		if i < 0 {
			p.parts = append(p.parts, line)
			break
		}
		p.parts = append(p.parts, line[:i])
		line = line[i+1:]
		if len(line) == 0 {
			p.parts = append(p.parts, line) // trailing empty field
		}
	}
	if len(p.parts) < 2 {
		return fmt.Errorf("cloudfront: line has %d tab-separated field, want the date and time at least (is this a CloudFront standard log?)", len(p.parts))
	}
	clear(p.vals[:])
	p.extra = p.extra[:0]
	for i, v := range p.parts {
		if i >= len(p.cols) {
			break // columns added after the header was written: nothing names them
		}
		c := p.cols[i]
		if c.id == cUnknown {
			p.extra = append(p.extra, i)
			continue
		}
		if len(v) == 1 && v[0] == '-' {
			continue
		}
		p.vals[c.id] = v
	}
	p.scratch = p.scratch[:0]
	e := &p.ev
	e.Reset()
	e.Dataset = Dataset
	if err := p.build(e); err != nil {
		return err
	}
	return out.Emit(e)
}

func dash(b []byte) bool { return len(b) == 0 || (len(b) == 1 && b[0] == '-') }

// intVal parses a numeric column; absent ("-") gives ok=false and no error.
func (p *Parser) intVal(c col) (int64, bool, error) {
	b := p.vals[c]
	if b == nil {
		return 0, false, nil
	}
	n, ok := fieldscan.ParseInt(b)
	if !ok {
		return 0, false, fmt.Errorf("cloudfront: field %s: not an integer: %q", colNames[c], clip(b))
	}
	return n, true, nil
}

func (p *Parser) floatVal(c col) (float64, bool, error) {
	b := p.vals[c]
	if b == nil {
		return 0, false, nil
	}
	f, ok := fieldscan.ParseDecimal(b)
	if !ok {
		return 0, false, fmt.Errorf("cloudfront: field %s: not a number: %q", colNames[c], clip(b))
	}
	return f, true, nil
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// str adds a column as a string borrowing the record.
func (p *Parser) str(e *event.Event, key string, c col) {
	if b := p.vals[c]; b != nil {
		e.Add(key, event.Bytes(b))
	}
}

// build fills e from the columns of the current line. Keys are added in the order
// the encoder sorts them, which makes its sort nearly free.
func (p *Parser) build(e *event.Event) error {
	// Numbers first: a malformed one rejects the line before anything is added.
	scBytes, hasScBytes, err := p.intVal(cScBytes)
	if err != nil {
		return err
	}
	status, hasStatus, err := p.intVal(cStatus)
	if err != nil {
		return err
	}
	csBytes, hasCsBytes, err := p.intVal(cCsBytes)
	if err != nil {
		return err
	}
	port, hasPort, err := p.intVal(cClientPort)
	if err != nil {
		return err
	}
	if hasPort && (port < 0 || port > 65535) {
		return fmt.Errorf("cloudfront: field c-port: out of range: %d", port)
	}
	ttfb, hasTTFB, err := p.floatVal(cTimeToFirstByte)
	if err != nil {
		return err
	}
	contentLen, hasContentLen, err := p.intVal(cContentLen)
	if err != nil {
		return err
	}
	rangeStart, hasRangeStart, err := p.intVal(cRangeStart)
	if err != nil {
		return err
	}
	rangeEnd, hasRangeEnd, err := p.intVal(cRangeEnd)
	if err != nil {
		return err
	}
	var duration int64
	hasDuration := false
	if b := p.vals[cTimeTaken]; b != nil {
		d, ok := parseNanos(b)
		if !ok {
			return fmt.Errorf("cloudfront: field time-taken: not a number of seconds: %q", clip(b))
		}
		duration, hasDuration = d, true
	}
	t, err := p.timestamp()
	if err != nil {
		return err
	}
	e.Time = t

	p.str(e, "aws.cloudfront.cookies", cCookie)
	p.str(e, "aws.cloudfront.domain", cHost)
	p.str(e, "aws.cloudfront.edge_detailed_result_type", cEdgeDetailedResultType)
	p.str(e, "aws.cloudfront.edge_location", cEdgeLocation)
	p.str(e, "aws.cloudfront.edge_response_result_type", cEdgeResponseResultType)
	p.str(e, "aws.cloudfront.edge_result_type", cEdgeResultType)
	p.str(e, "aws.cloudfront.fle_encrypted_fields", cFLEEncryptedFields)
	p.str(e, "aws.cloudfront.fle_status", cFLEStatus)
	if hasRangeEnd {
		e.Add("aws.cloudfront.range_end", event.Int(rangeEnd))
	}
	if hasRangeStart {
		e.Add("aws.cloudfront.range_start", event.Int(rangeStart))
	}
	if hasTTFB {
		e.Add("aws.cloudfront.time_to_first_byte", event.Float(ttfb))
	}
	for _, i := range p.extra {
		if v := p.parts[i]; !dash(v) {
			e.Add(p.cols[i].key, event.Bytes(v))
		}
	}
	e.Add("cloud.provider", event.String("aws"))
	hostHeader := p.vals[cHostHeader]
	if hostHeader != nil {
		e.Add("destination.address", event.Bytes(hostHeader))
		e.Add("destination.domain", event.Bytes(hostHeader))
	}
	e.Add("event.category", event.Raw(webJSON))
	if hasDuration {
		e.Add("event.duration", event.Int(duration))
	}
	e.Add("event.kind", event.String("event"))
	if hasStatus {
		// Status 000 means the viewer closed the connection before CloudFront answered.
		if status >= 400 || status == 0 {
			e.Add("event.outcome", event.String("failure"))
		} else {
			e.Add("event.outcome", event.String("success"))
		}
	}
	e.Add("event.type", event.Raw(accessJSON))
	if hasCsBytes {
		e.Add("http.request.bytes", event.Int(csBytes))
	}
	if id := p.vals[cEdgeRequestID]; id != nil {
		e.Add("http.request.id", event.Bytes(id))
		// The request id is CloudFront's unique id of the request: the event's own id.
		e.ID = string(id)
	}
	p.str(e, "http.request.method", cMethod)
	p.str(e, "http.request.referrer", cReferer)
	if hasContentLen {
		e.Add("http.response.body.bytes", event.Int(contentLen))
	}
	if hasScBytes {
		e.Add("http.response.bytes", event.Int(scBytes))
	}
	p.str(e, "http.response.mime_type", cContentType)
	if hasStatus {
		e.Add("http.response.status_code", event.Int(status))
	}
	if v := p.vals[cProtocolVersion]; v != nil {
		if i := bytes.IndexByte(v, '/'); i >= 0 && i+1 < len(v) {
			e.Add("http.version", event.Bytes(v[i+1:]))
		}
	}
	clientIP := p.vals[cClientIP]
	ipv := 0
	if clientIP != nil {
		ipv = fieldscan.IPVersion(clientIP)
	}
	fwdStart, fwdN := p.forwarded()
	fwdEnd := len(p.scratch)
	if fwdN > 0 {
		e.Add("network.forwarded_ip", event.Raw(p.scratch[fwdStart:fwdEnd:fwdEnd]))
	}
	p.str(e, "network.protocol", cProtocol)
	switch ipv {
	case 4:
		e.Add("network.type", event.String("ipv4"))
	case 6:
		e.Add("network.type", event.String("ipv6"))
	}
	p.relatedHosts(e)
	if ipv != 0 || fwdN > 0 {
		start := len(p.scratch)
		p.scratch = append(p.scratch, '[')
		if ipv != 0 {
			p.scratch = event.AppendStringBytes(p.scratch, clientIP)
		}
		if fwdN > 0 {
			// The forwarded list is already JSON: splice its elements in.
			inner := p.scratch[fwdStart+1 : fwdEnd-1]
			if ipv != 0 {
				p.scratch = append(p.scratch, ',')
			}
			p.scratch = append(p.scratch, inner...)
		}
		p.scratch = append(p.scratch, ']')
		e.Add("related.ip", event.Raw(p.scratch[start:len(p.scratch):len(p.scratch)]))
	}
	if clientIP != nil {
		e.Add("source.address", event.Bytes(clientIP))
		if ipv != 0 {
			e.Add("source.ip", event.Bytes(clientIP))
		}
	}
	if hasPort {
		e.Add("source.port", event.Int(port))
	}
	p.str(e, "tls.cipher", cSSLCipher)
	if v := p.vals[cSSLProtocol]; v != nil {
		// "TLSv1.2" → version_protocol "tls", version "1.2".
		if i := bytes.IndexByte(v, 'v'); i > 0 && i+1 < len(v) {
			name := v[:i]
			if bytes.EqualFold(name, []byte("tls")) || bytes.EqualFold(name, []byte("ssl")) {
				e.Add("tls.version", event.Bytes(v[i+1:]))
				if name[0] == 't' || name[0] == 'T' {
					e.Add("tls.version_protocol", event.String("tls"))
				} else {
					e.Add("tls.version_protocol", event.String("ssl"))
				}
			}
		}
	}
	p.url(e, hostHeader)
	if ua := p.vals[cUserAgent]; ua != nil {
		e.Add("user_agent.original", event.Bytes(p.unescape(ua)))
	}
	return nil
}

var (
	webJSON    = []byte(`["web"]`)
	accessJSON = []byte(`["access"]`)
)

// timestamp joins the date and time columns (UTC, second precision).
func (p *Parser) timestamp() (time.Time, error) {
	d, tm := p.vals[cDate], p.vals[cTime]
	if d == nil || tm == nil {
		return time.Time{}, fmt.Errorf("cloudfront: line has no date and time columns")
	}
	var buf [40]byte
	if len(d)+1+len(tm) > len(buf) {
		return time.Time{}, fmt.Errorf("cloudfront: field date/time: not a timestamp: %q %q", clip(d), clip(tm))
	}
	n := copy(buf[:], d)
	buf[n] = 'T'
	n++
	n += copy(buf[n:], tm)
	t, ok := fieldscan.ParseTime(buf[:n])
	if !ok {
		return time.Time{}, fmt.Errorf("cloudfront: field date/time: not a timestamp: %q %q", clip(d), clip(tm))
	}
	return t, nil
}

var pct20 = []byte("%20")

// forwarded appends the valid IPs of x-forwarded-for as a JSON array to scratch and
// returns where it starts and how many there are. Entries may carry a port; values
// that are not addresses ("localhost:8080", "unknown") are left out.
func (p *Parser) forwarded() (start, n int) {
	v := p.vals[cForwardedFor]
	if v == nil {
		return 0, 0
	}
	start = len(p.scratch)
	p.scratch = append(p.scratch, '[')
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		// CloudFront URL-encodes the space after the comma ("a,%20b") in the log
		// file; a literal space is accepted too.
		item = bytes.TrimSpace(item)
		for bytes.HasPrefix(item, pct20) {
			item = bytes.TrimSpace(item[3:])
		}
		if fieldscan.IPVersion(item) == 0 {
			host, _, ok := fieldscan.SplitHostPort(item)
			if !ok || fieldscan.IPVersion(host) == 0 {
				continue
			}
			item = host
		}
		if n > 0 {
			p.scratch = append(p.scratch, ',')
		}
		p.scratch = event.AppendStringBytes(p.scratch, item)
		n++
	}
	if n == 0 {
		p.scratch = p.scratch[:start]
		return 0, 0
	}
	p.scratch = append(p.scratch, ']')
	return start, n
}

// relatedHosts adds the distribution domain and the Host header, once each.
func (p *Parser) relatedHosts(e *event.Event) {
	a, b := p.vals[cHost], p.vals[cHostHeader]
	if a == nil {
		a, b = b, nil
	}
	if a == nil {
		return
	}
	start := len(p.scratch)
	p.scratch = append(p.scratch, '[')
	p.scratch = event.AppendStringBytes(p.scratch, a)
	if b != nil && !bytes.Equal(a, b) {
		p.scratch = append(p.scratch, ',')
		p.scratch = event.AppendStringBytes(p.scratch, b)
	}
	p.scratch = append(p.scratch, ']')
	e.Add("related.hosts", event.Raw(p.scratch[start:len(p.scratch):len(p.scratch)]))
}

// url adds url.* the way Elastic builds them: url.full from the protocol, the Host
// header, the URI stem and the query; url.domain is the Host header the viewer sent.
// Without an x-host-header column the distribution domain (cs(Host)) stands in, and
// url.full is only built when there is a scheme and a host to build it from.
func (p *Parser) url(e *event.Event, host []byte) {
	scheme, path, query := p.vals[cProtocol], p.vals[cURIStem], p.vals[cURIQuery]
	if host == nil {
		host = p.vals[cHost]
	}
	if host != nil {
		e.Add("url.domain", event.Bytes(host))
	}
	if path != nil {
		seg := path[bytes.LastIndexByte(path, '/')+1:]
		if dot := bytes.LastIndexByte(seg, '.'); dot >= 0 && dot+1 < len(seg) {
			e.Add("url.extension", event.Bytes(seg[dot+1:]))
		}
	}
	if scheme != nil && host != nil {
		start := len(p.scratch)
		p.scratch = append(p.scratch, scheme...)
		p.scratch = append(p.scratch, "://"...)
		p.scratch = append(p.scratch, host...)
		p.scratch = append(p.scratch, path...)
		if query != nil {
			p.scratch = append(p.scratch, '?')
			p.scratch = append(p.scratch, query...)
		}
		e.Add("url.full", event.Bytes(p.scratch[start:len(p.scratch):len(p.scratch)]))
	}
	if path != nil {
		e.Add("url.path", event.Bytes(path))
	}
	if query != nil {
		e.Add("url.query", event.Bytes(query))
	}
	if scheme != nil {
		e.Add("url.scheme", event.Bytes(scheme))
	}
}

// unescape decodes %XX escapes once (CloudFront writes the user agent URL-encoded;
// a user agent that was already encoded by the client stays encoded once, as in
// Elastic's pipeline). Invalid escapes are kept as written. It returns b itself when
// there is nothing to decode, and otherwise a slice of scratch.
func (p *Parser) unescape(b []byte) []byte {
	if bytes.IndexByte(b, '%') < 0 {
		return b
	}
	start := len(p.scratch)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '%' && i+2 < len(b)+0 && fieldscan.IsHex(b[i+1]) && fieldscan.IsHex(b[i+2]) {
			p.scratch = append(p.scratch, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
			continue
		}
		p.scratch = append(p.scratch, c)
	}
	return p.scratch[start:len(p.scratch):len(p.scratch)]
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// parseNanos converts a decimal number of seconds ("0.102") to nanoseconds exactly.
func parseNanos(b []byte) (int64, bool) {
	var n int64
	frac := -1
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if frac >= 0 {
				if frac == 9 {
					continue // below a nanosecond
				}
				frac++
			}
			n = n*10 + int64(c-'0')
		case c == '.' && frac < 0:
			frac = 0
		default:
			return 0, false
		}
	}
	if frac < 0 {
		frac = 0
	}
	for ; frac < 9; frac++ {
		n *= 10
	}
	return n, true
}
