// Package albparse parses Elastic Load Balancing logs into ECS events: Application
// Load Balancer access logs (types http, https, h2, grpcs, ws, wss), Network Load
// Balancer TLS access logs ("tls 2.0 ..."), ALB connection logs and Classic ELB access
// logs. Field names follow Elastic's AWS integration (data stream aws.elb_logs).
package albparse

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/fieldscan"
)

// Dataset is the event.dataset of the events, the data stream Elastic's AWS
// integration uses for load balancer logs.
const Dataset = "aws.elb_logs"

// Field counts of the layouts. The minimums are the oldest layouts AWS has written, so
// old log files still parse; the maximums are the newest fields Vigil names.
const (
	albMin, albMax       = 18, 33 // 2016 layout .. 2025 transform fields
	nlbMin, nlbMax       = 21, 22 // tls_connection_creation_time came later
	connMin, connMax     = 11, 12 // conn_trace_id came later
	classicMin, classMax = 12, 15 // request only .. user agent and TLS fields
)

// Parser parses one log line per record. It keeps scratch space between records and
// is not safe for concurrent use.
type Parser struct {
	cfg     Config
	ev      event.Event
	fields  [maxFields]field
	scratch []byte // JSON arrays the event borrows through event.Raw
	vals    [numKeys]event.Value
	set     []key // keys set for the current record, in the order set
}

// New returns a parser with the given options.
func New(cfg Config) *Parser {
	return &Parser{cfg: cfg, scratch: make([]byte, 0, 512), set: make([]key, 0, numKeys)}
}

// add records the value of k for the current record; each key is set at most once.
func (p *Parser) add(k key, v event.Value) {
	p.vals[k] = v
	p.set = append(p.set, k)
}

// flush moves the collected values into the event in key order. The keys are small
// integers, so an insertion sort of a nearly sorted list is all it takes.
func (p *Parser) flush() {
	s := p.set
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	for i, k := range s {
		if i > 0 && s[i-1] == k {
			continue
		}
		p.ev.Add(keyNames[k], p.vals[k])
		p.vals[k] = event.Value{} // drop the reference to the record
	}
}

var errEmpty = errors.New("blank line")

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	line := bytes.TrimRight(rec, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 {
		out.Skip("blank_line")
		return nil
	}
	n, total, badQuote := tokenize(line, &p.fields)
	if badQuote >= 0 {
		return fmt.Errorf("elb log: unterminated quoted field at byte %d", badQuote)
	}
	f := p.fields[:n]
	e := &p.ev
	e.Reset()
	p.scratch = p.scratch[:0]
	for _, k := range p.set {
		p.vals[k] = event.Value{}
	}
	p.set = p.set[:0]
	e.Dataset = Dataset
	var err error
	switch kind := f[0].b; string(kind) {
	case "http", "https", "h2", "grpcs", "ws", "wss":
		err = p.alb(f, total)
	case "tls":
		err = p.nlb(f, total)
	default:
		if len(kind) > 0 && kind[0] >= '0' && kind[0] <= '9' {
			if n > 1 && fieldscan.IPVersion(f[1].b) != 0 {
				err = p.connection(f, total)
			} else {
				err = p.classic(f, total)
			}
		} else {
			err = fmt.Errorf("elb log: unknown log type %q at byte 0 (want http, https, h2, grpcs, ws, wss, tls, or a timestamp for Classic ELB and connection logs)", clip(kind))
		}
	}
	if err != nil {
		return err
	}
	p.flush()
	return out.Emit(e)
}

// clip shortens a value quoted in an error message.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func fieldErr(name string, f field, why string) error {
	return fmt.Errorf("elb log: field %s at byte %d: %s: %q", name, f.off, why, clip(f.b))
}

func countErr(layout string, got, lo, hi int, strict bool) error {
	if got < lo {
		return fmt.Errorf("elb log: %s line has %d fields, want at least %d", layout, got, lo)
	}
	if strict && got > hi {
		return fmt.Errorf("elb log: %s line has %d fields, more than the %d known (strict mode)", layout, got, hi)
	}
	return nil
}

// str adds a string leaf borrowing the record unless the field is "-" or empty.
func (p *Parser) str(k key, f field) {
	if len(f.b) == 0 || f.isDash() {
		return
	}
	p.add(k, event.Bytes(f.b))
}

// list adds a JSON array of the parts of f split at sep, unless f is "-" or empty.
func (p *Parser) list(k key, f field, sep byte) {
	if len(f.b) == 0 || f.isDash() {
		return
	}
	start := len(p.scratch)
	p.scratch = fieldscan.AppendJSONList(p.scratch, f.b, sep)
	p.add(k, event.Raw(p.scratch[start:len(p.scratch):len(p.scratch)]))
}

// intField adds an integer leaf; "-" means absent, anything else not a number is an error.
func (p *Parser) intField(k key, name string, f field) error {
	if f.isDash() {
		return nil
	}
	v, ok := fieldscan.ParseInt(f.b)
	if !ok {
		return fieldErr(name, f, "not an integer")
	}
	p.add(k, event.Int(v))
	return nil
}

// seconds adds a processing time; ALB writes -1 when the request never reached the
// step (and Elastic omits the field then).
func (p *Parser) seconds(k key, name string, f field) error {
	if f.isDash() || (len(f.b) == 2 && f.b[0] == '-' && f.b[1] == '1') {
		return nil
	}
	v, ok := fieldscan.ParseDecimal(f.b)
	if !ok {
		return fieldErr(name, f, "not a number")
	}
	p.add(k, event.Float(v))
	return nil
}

func (p *Parser) timeField(k key, name string, f field) error {
	if f.isDash() {
		return nil
	}
	t, ok := fieldscan.ParseTime(f.b)
	if !ok {
		return fieldErr(name, f, "not an ISO 8601 time")
	}
	p.add(k, event.Time(t))
	return nil
}

// eventTime sets the event time from the record's own timestamp, which is mandatory.
func (p *Parser) eventTime(name string, f field) error {
	t, ok := fieldscan.ParseTime(f.b)
	if !ok {
		return fieldErr(name, f, "not an ISO 8601 time")
	}
	p.ev.Time = t
	p.add(kEventEnd, event.Time(t))
	return nil
}

// endpoint adds the ip and port of "ip:port" under ipKey and portKey (keys are passed
// whole: building them would allocate). addrKey, when set, also receives the host as
// written. It returns the IP for related.ip, or nil.
func (p *Parser) endpoint(ipKey, portKey, addrKey key, name string, f field, portAsString bool) ([]byte, error) {
	if f.isDash() {
		return nil, nil
	}
	host, port, ok := fieldscan.SplitHostPort(f.b)
	if !ok || len(port) == 0 {
		return nil, fieldErr(name, f, "not ip:port")
	}
	pn, ok := fieldscan.ParsePort(port)
	if !ok {
		return nil, fieldErr(name, f, "bad port")
	}
	if addrKey != noKey {
		p.add(addrKey, event.Bytes(host))
	}
	var ip []byte
	if fieldscan.IPVersion(host) != 0 {
		p.add(ipKey, event.Bytes(host))
		ip = host
	}
	if portAsString {
		// Elastic maps aws.elb.backend.port as a keyword.
		p.add(portKey, event.Bytes(port))
	} else {
		p.add(portKey, event.Int(pn))
	}
	return ip, nil
}

// relatedIP adds related.ip from the addresses found, deduplicated.
func (p *Parser) relatedIP(a, b []byte) {
	if a == nil && b == nil {
		return
	}
	if a == nil || bytes.Equal(a, b) {
		a, b = b, nil
	}
	start := len(p.scratch)
	p.scratch = append(p.scratch, '[')
	p.scratch = event.AppendStringBytes(p.scratch, a)
	if b != nil {
		p.scratch = append(p.scratch, ',')
		p.scratch = event.AppendStringBytes(p.scratch, b)
	}
	p.scratch = append(p.scratch, ']')
	p.add(kRelatedIp, event.Raw(p.scratch[start:len(p.scratch):len(p.scratch)]))
}

// tlsFields adds the cipher and protocol the way Elastic does: aws.elb.ssl_* as
// written, plus tls.cipher, tls.version ("TLSv1.2" and "tlsv12" both give "1.2") and
// tls.version_protocol.
func (p *Parser) tlsFields(cipher, proto field) {
	if !cipher.isDash() && len(cipher.b) > 0 {
		p.add(kAwsElbSslCipher, event.Bytes(cipher.b))
		p.add(kTlsCipher, event.Bytes(cipher.b))
	}
	if proto.isDash() || len(proto.b) == 0 {
		return
	}
	p.add(kAwsElbSslProtocol, event.Bytes(proto.b))
	b := proto.b
	v := bytes.IndexByte(b, 'v')
	if v <= 0 || v == len(b)-1 || bytes.IndexByte(b[v+1:], 'v') >= 0 {
		return
	}
	name, ver := b[:v], b[v+1:]
	if bytes.EqualFold(name, []byte("tls")) {
		p.add(kTlsVersionProtocol, event.String("tls"))
	} else if bytes.EqualFold(name, []byte("ssl")) {
		p.add(kTlsVersionProtocol, event.String("ssl"))
	} else {
		return
	}
	if bytes.IndexByte(ver, '.') >= 0 {
		p.add(kTlsVersion, event.Bytes(ver))
		return
	}
	// "tlsv12" → "1.2"; a lone digit ("TLSv1") is "1.0".
	start := len(p.scratch)
	p.scratch = append(p.scratch, ver[0], '.')
	if len(ver) > 1 {
		p.scratch = append(p.scratch, ver[1:]...)
	} else {
		p.scratch = append(p.scratch, '0')
	}
	p.add(kTlsVersion, event.Bytes(p.scratch[start:len(p.scratch):len(p.scratch)]))
}

func (p *Parser) common(category string, protocol string) {
	p.add(kCloudProvider, event.String("aws"))
	p.add(kEventKind, event.String("event"))
	p.add(kEventCategory, event.Raw(categoryJSON(category)))
	p.add(kAwsElbProtocol, event.String(protocol))
}

var (
	webJSON     = []byte(`["web"]`)
	networkJSON = []byte(`["network"]`)
)

func categoryJSON(c string) []byte {
	if c == "web" {
		return webJSON
	}
	return networkJSON
}
