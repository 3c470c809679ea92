package albparse

import (
	"bytes"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse/fieldscan"
)

// httpLog parses the part ALB and Classic ELB access lines share, from the timestamp
// to ssl_protocol. f[0] is the timestamp; fields past the end of f are absent.
func (p *Parser) httpLog(f []field) error {
	if err := p.eventTime("time", f[0]); err != nil {
		return err
	}
	p.str(kAwsElbName, f[1])
	client, err := p.endpoint(kSourceIp, kSourcePort, kSourceAddress, "client:port", f[2], false)
	if err != nil {
		return err
	}
	target, err := p.endpoint(kAwsElbBackendIp, kAwsElbBackendPort, noKey, "target:port", f[3], true)
	if err != nil {
		return err
	}
	p.relatedIP(client, target)
	if err := p.seconds(kAwsElbRequestProcessingTimeSec, "request_processing_time", f[4]); err != nil {
		return err
	}
	if err := p.seconds(kAwsElbBackendProcessingTimeSec, "target_processing_time", f[5]); err != nil {
		return err
	}
	if err := p.seconds(kAwsElbResponseProcessingTimeSec, "response_processing_time", f[6]); err != nil {
		return err
	}
	status := f[7]
	isTCP := status.isDash() && f[8].isDash() && (len(f) < 12 || isTCPRequest(f[11].b))
	if isTCP {
		// Classic ELB TCP listener: no HTTP at all, only byte counts.
		if err := p.intField(kSourceBytes, "received_bytes", f[9]); err != nil {
			return err
		}
		if err := p.intField(kDestinationBytes, "sent_bytes", f[10]); err != nil {
			return err
		}
		p.common("network", "tcp")
	} else {
		if err := p.intField(kHttpResponseStatusCode, "elb_status_code", status); err != nil {
			return err
		}
		if v, ok := fieldscan.ParseInt(status.b); ok {
			if v >= 400 {
				p.add(kEventOutcome, event.String("failure"))
			} else {
				p.add(kEventOutcome, event.String("success"))
			}
		}
		if err := p.intField(kAwsElbBackendHttpResponseStatusCode, "target_status_code", f[8]); err != nil {
			return err
		}
		if err := p.intField(kHttpRequestBodyBytes, "received_bytes", f[9]); err != nil {
			return err
		}
		if err := p.intField(kHttpResponseBodyBytes, "sent_bytes", f[10]); err != nil {
			return err
		}
		p.common("web", "http")
	}
	if len(f) > 11 && !isTCP {
		p.request(f[11])
	}
	if len(f) > 12 && !isTCP {
		p.str(kUserAgentOriginal, f[12])
	}
	if len(f) > 14 {
		p.tlsFields(f[13], f[14])
	} else if len(f) > 13 {
		p.tlsFields(f[13], field{})
	}
	return nil
}

// isTCPRequest reports whether a request field is the "- - - " Classic ELB writes for
// TCP listeners.
func isTCPRequest(b []byte) bool {
	return len(bytes.Trim(b, "- ")) == 0
}

// request parses "METHOD URL PROTOCOL". The URL may hold spaces (ALB logs the request
// line as the client sent it), so the method ends at the first space and the protocol
// starts after the last one; malformed requests such as "- http://host:80- -" keep
// whatever parts they have.
func (p *Parser) request(f field) {
	b := f.b
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return
	}
	method, rest := b[:sp], b[sp+1:]
	if len(method) > 0 && !(len(method) == 1 && method[0] == '-') {
		p.add(kHttpRequestMethod, event.Bytes(method))
	}
	var proto []byte
	if last := bytes.LastIndexByte(rest, ' '); last >= 0 {
		proto = rest[last+1:]
		rest = rest[:last]
	}
	if len(proto) > 5 && bytes.HasPrefix(proto, []byte("HTTP/")) {
		p.add(kHttpVersion, event.Bytes(proto[5:]))
	}
	if len(rest) == 0 || (len(rest) == 1 && rest[0] == '-') {
		return
	}
	p.add(kUrlOriginal, event.Bytes(rest))
	p.addURL(rest)
}

// addURL adds the parts of an absolute URL ("scheme://host:port/path?query#frag") or
// of a path. A URL whose authority does not parse keeps only url.original.
func (p *Parser) addURL(u []byte) {
	path := u
	if i := bytes.Index(u, []byte("://")); i > 0 {
		scheme := u[:i]
		rest := u[i+3:]
		end := 0
		for end < len(rest) && rest[end] != '/' && rest[end] != '?' && rest[end] != '#' {
			end++
		}
		auth := rest[:end]
		if at := bytes.LastIndexByte(auth, '@'); at >= 0 {
			auth = auth[at+1:]
		}
		host, port := auth, []byte(nil)
		if len(auth) > 0 && auth[0] == '[' {
			cl := bytes.IndexByte(auth, ']')
			if cl < 0 {
				return
			}
			host = auth[1:cl]
			if cl+1 < len(auth) {
				if auth[cl+1] != ':' {
					return
				}
				port = auth[cl+2:]
			}
		} else if c := bytes.LastIndexByte(auth, ':'); c >= 0 {
			host, port = auth[:c], auth[c+1:]
		}
		var pn int64
		if port != nil {
			var ok bool
			if pn, ok = fieldscan.ParsePort(port); !ok {
				return
			}
		}
		if len(host) == 0 {
			return
		}
		p.add(kUrlScheme, event.Bytes(scheme))
		p.add(kUrlDomain, event.Bytes(host))
		if port != nil {
			p.add(kUrlPort, event.Int(pn))
		}
		path = rest[end:]
	} else if len(u) == 0 || u[0] != '/' {
		return
	}
	if h := bytes.IndexByte(path, '#'); h >= 0 {
		if h+1 < len(path) {
			p.add(kUrlFragment, event.Bytes(path[h+1:]))
		}
		path = path[:h]
	}
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		if q+1 < len(path) {
			p.add(kUrlQuery, event.Bytes(path[q+1:]))
		}
		path = path[:q]
	}
	if len(path) > 0 {
		p.add(kUrlPath, event.Bytes(path))
		seg := path[bytes.LastIndexByte(path, '/')+1:]
		if dot := bytes.LastIndexByte(seg, '.'); dot >= 0 && dot+1 < len(seg) {
			p.add(kUrlExtension, event.Bytes(seg[dot+1:]))
		}
	}
}

// alb parses an Application Load Balancer access line.
func (p *Parser) alb(f []field, total int) error {
	if err := countErr("ALB access log", total, albMin, albMax, p.cfg.Strict); err != nil {
		return err
	}
	p.add(kAwsElbType, event.Bytes(f[0].b))
	if err := p.httpLog(f[1:]); err != nil {
		return err
	}
	p.str(kAwsElbTargetGroupArn, f[16])
	if !f[17].isDash() && len(f[17].b) > 0 {
		p.add(kAwsElbTraceId, event.Bytes(f[17].b))
		p.add(kTraceId, event.Bytes(f[17].b))
	}
	opt := func(i int) field {
		if i < len(f) {
			return f[i]
		}
		return field{b: dash}
	}
	p.str(kDestinationDomain, opt(18))
	p.str(kAwsElbChosenCertArn, opt(19))
	// Elastic keeps the priority as a keyword; "-1" (no rule) and "-" are absent.
	if pr := opt(20); !(len(pr.b) == 2 && pr.b[0] == '-' && pr.b[1] == '1') {
		if !pr.isDash() {
			if _, ok := fieldscan.ParseInt(pr.b); !ok {
				return fieldErr("matched_rule_priority", pr, "not an integer")
			}
		}
		p.str(kAwsElbMatchedRulePriority, pr)
	}
	if err := p.timeField(kEventStart, "request_creation_time", opt(21)); err != nil {
		return err
	}
	p.list(kAwsElbActionExecuted, opt(22), ',')
	p.str(kAwsElbRedirectUrl, opt(23))
	p.str(kAwsElbErrorReason, opt(24))
	p.list(kAwsElbTargetPort, opt(25), ' ')
	p.list(kAwsElbTargetStatusCode, opt(26), ' ')
	p.str(kAwsElbClassification, opt(27))
	p.str(kAwsElbClassificationReason, opt(28))
	p.str(kAwsElbConnectionTraceId, opt(29))
	p.str(kAwsElbTransformedHost, opt(30))
	p.str(kAwsElbTransformedUri, opt(31))
	p.str(kAwsElbRequestTransformStatus, opt(32))
	return nil
}

var dash = []byte("-")

// classic parses a Classic Load Balancer access line (no type field).
func (p *Parser) classic(f []field, total int) error {
	if err := countErr("Classic ELB access log", total, classicMin, classMax, p.cfg.Strict); err != nil {
		return err
	}
	return p.httpLog(f)
}

// nlb parses a Network Load Balancer TLS listener access line.
func (p *Parser) nlb(f []field, total int) error {
	if err := countErr("NLB TLS access log", total, nlbMin, nlbMax, p.cfg.Strict); err != nil {
		return err
	}
	p.add(kAwsElbType, event.Bytes(f[0].b))
	if err := p.eventTime("time", f[2]); err != nil {
		return err
	}
	p.str(kAwsElbName, f[3])
	p.str(kAwsElbListener, f[4])
	client, err := p.endpoint(kSourceIp, kSourcePort, kSourceAddress, "client:port", f[5], false)
	if err != nil {
		return err
	}
	target, err := p.endpoint(kAwsElbBackendIp, kAwsElbBackendPort, noKey, "destination:port", f[6], true)
	if err != nil {
		return err
	}
	p.relatedIP(client, target)
	if err := p.seconds(kAwsElbConnectionTimeMs, "connection_time", f[7]); err != nil {
		return err
	}
	if err := p.seconds(kAwsElbTlsHandshakeTimeMs, "tls_handshake_time", f[8]); err != nil {
		return err
	}
	if err := p.intField(kSourceBytes, "received_bytes", f[9]); err != nil {
		return err
	}
	if err := p.intField(kDestinationBytes, "sent_bytes", f[10]); err != nil {
		return err
	}
	p.str(kAwsElbIncomingTlsAlert, f[11])
	p.str(kAwsElbChosenCertArn, f[12])
	p.str(kAwsElbChosenCertSerial, f[13])
	p.tlsFields(f[14], f[15])
	p.str(kAwsElbTlsNamedGroup, f[16])
	p.str(kDestinationDomain, f[17])
	p.str(kAwsElbAlpnFeProtocol, f[18])
	p.str(kAwsElbAlpnBeProtocol, f[19])
	// The preference list is written as `"h2","http/1.1"`; Elastic drops the outer
	// quotes (and the backslash-escaped ones some exports carry) and keeps the rest.
	if pl := f[20]; !pl.isDash() && len(pl.b) > 0 {
		b := pl.b
		b = bytes.TrimPrefix(b, []byte(`\"`))
		b = bytes.TrimPrefix(b, []byte(`"`))
		b = bytes.TrimSuffix(b, []byte(`\"`))
		b = bytes.TrimSuffix(b, []byte(`"`))
		if len(b) > 0 {
			p.add(kAwsElbAlpnClientPreferenceList, event.Bytes(b))
		}
	}
	if len(f) > 21 {
		if err := p.timeField(kAwsElbTlsConnectionCreationTime, "tls_connection_creation_time", f[21]); err != nil {
			return err
		}
	}
	p.common("network", "tcp")
	return nil
}

// connection parses an ALB connection log line: the TLS handshake of each connection,
// with the client certificate when mutual TLS is on.
func (p *Parser) connection(f []field, total int) error {
	if err := countErr("ALB connection log", total, connMin, connMax, p.cfg.Strict); err != nil {
		return err
	}
	if err := p.eventTime("time", f[0]); err != nil {
		return err
	}
	p.add(kClientIp, event.Bytes(f[1].b))
	p.relatedIP(f[1].b, nil)
	port, ok := fieldscan.ParsePort(f[2].b)
	if !ok {
		return fieldErr("client_port", f[2], "bad port")
	}
	p.add(kClientPort, event.Int(port))
	if _, ok := fieldscan.ParsePort(f[3].b); !ok {
		return fieldErr("listener_port", f[3], "bad port")
	}
	p.str(kAwsElbListener, f[3])
	p.tlsFields(f[5], f[4])
	if err := p.seconds(kAwsElbTlsHandshakeLatency, "tls_handshake_latency", f[6]); err != nil {
		return err
	}
	p.str(kAwsElbLeafClientCertSubject, f[7])
	// Validity is "NotBefore=<time>;NotAfter=<time>".
	if v := f[8].b; !f[8].isDash() {
		for len(v) > 0 {
			part := v
			if i := bytes.IndexByte(v, ';'); i >= 0 {
				part, v = v[:i], v[i+1:]
			} else {
				v = nil
			}
			name, val, _ := bytes.Cut(part, []byte("="))
			var k key
			switch string(name) {
			case "NotBefore":
				k = kAwsElbLeafClientCertNotBefore
			case "NotAfter":
				k = kAwsElbLeafClientCertNotAfter
			default:
				continue
			}
			if err := p.timeField(k, "leaf_client_cert_validity", field{b: val, off: f[8].off}); err != nil {
				return err
			}
		}
	}
	p.str(kAwsElbLeafClientCertSerialNumber, f[9])
	// "Success", or "Failed:<error code>".
	if st := f[10]; !st.isDash() && len(st.b) > 0 {
		status, code, found := bytes.Cut(st.b, []byte(":"))
		p.add(kAwsElbTlsVerifyStatus, event.Bytes(status))
		if found && len(code) > 0 {
			p.add(kAwsElbTlsErrorCode, event.Bytes(code))
		}
	}
	if len(f) > 11 {
		p.str(kAwsElbConnectionTraceId, f[11])
	}
	p.common("network", "tcp")
	return nil
}
