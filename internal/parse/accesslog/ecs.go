package accesslog

import (
	"bytes"

	"github.com/vigil-sec/vigil/internal/event"
)

// Builder fills events from scanned lines. It owns the scratch buffer that the
// JSON-array fields (related.ip, related.user, remote_ip_list) borrow, so one Builder
// belongs to one parser and the event must be emitted before the next Fill.
type Builder struct {
	buf    []byte
	module string
	// Keys of the module's own fields, built once: concatenating per event would
	// allocate.
	identityKey, listKey, requestKey string
}

// NewBuilder returns a Builder for module, the prefix of the non-ECS fields
// ("apache.access", "nginx.access").
func NewBuilder(module string) *Builder {
	return &Builder{
		module:      module,
		identityKey: module + ".identity",
		listKey:     module + ".remote_ip_list",
		requestKey:  module + ".request",
	}
}

// Fixed JSON arrays; the encoder copies Raw values verbatim and nothing writes them.
var (
	rawWeb    = []byte(`["web"]`)
	rawAccess = []byte(`["access"]`)
)

// Client is the client side of a line as the format package understood it.
type Client struct {
	// Address is the chosen client address (source.address).
	Address []byte
	// List, when set, is written as <module>.remote_ip_list (nginx address lists).
	List [][]byte
}

// Fill sets the fields of an access-log event on e: time, source, user, request,
// response, referrer, user agent and the event categorisation that the Filebeat
// apache/nginx modules set. The caller adds its own fields before Fill.
//
// Fields are added in the encoder's sort order, which makes its sort nearly free.
func (b *Builder) Fill(e *event.Event, l *Line, c Client) {
	// Raw values borrow b.buf, so it must not move while the event is built: reserve
	// room for the worst case (every byte of the line escaped as \u00XX).
	need := 6*(len(l.Head)+len(l.User)) + 64
	if cap(b.buf) < need {
		b.buf = make([]byte, 0, need)
	}
	b.buf = b.buf[:0]
	e.Time = l.Time
	early := b.module < "event"
	if early {
		b.moduleFields(e, l, c)
	}
	e.Add("event.category", event.Raw(rawWeb))
	e.Add("event.kind", event.String("event"))
	if l.Status >= 0 {
		if l.Status < 400 {
			e.Add("event.outcome", event.String("success"))
		} else {
			e.Add("event.outcome", event.String("failure"))
		}
	}
	e.Add("event.type", event.Raw(rawAccess))
	if l.Method != nil {
		e.Add("http.request.method", event.Bytes(l.Method))
	}
	if l.Referrer != nil {
		e.Add("http.request.referrer", event.Bytes(l.Referrer))
	}
	if l.BodyBytes >= 0 {
		e.Add("http.response.body.bytes", event.Int(l.BodyBytes))
	}
	if l.Status >= 0 {
		e.Add("http.response.status_code", event.Int(int64(l.Status)))
	}
	if l.Method != nil && len(l.Version) > 0 {
		e.Add("http.version", event.Bytes(l.Version))
	}
	if !early {
		b.moduleFields(e, l, c)
	}
	ip := IsIP(c.Address)
	if ip {
		e.Add("related.ip", event.Raw(b.array(c.Address)))
	}
	if l.User != nil {
		e.Add("related.user", event.Raw(b.array(l.User)))
	}
	e.Add("source.address", event.Bytes(c.Address))
	if ip {
		e.Add("source.ip", event.Bytes(c.Address))
	} else if isHostname(c.Address) {
		e.Add("source.domain", event.Bytes(c.Address))
	}
	if l.Method != nil {
		addURL(e, l.URL)
	}
	if l.User != nil {
		e.Add("user.name", event.Bytes(l.User))
	}
	if l.UserAgent != nil {
		e.Add("user_agent.original", event.Bytes(l.UserAgent))
	}
}

func (b *Builder) moduleFields(e *event.Event, l *Line, c Client) {
	if l.Ident != nil {
		e.Add(b.identityKey, event.Bytes(l.Ident))
	}
	if c.List != nil {
		e.Add(b.listKey, event.Raw(b.array(c.List...)))
	}
	if l.Method == nil && len(l.Request) > 0 && !isDash(l.Request) {
		// Not an HTTP request line (probes, TLS handshakes sent to a plain port):
		// keep it, it is often the interesting part.
		e.Add(b.requestKey, event.Bytes(l.Request))
	}
}

// array appends items to b.buf as a JSON array of strings and returns it.
func (b *Builder) array(items ...[]byte) []byte {
	start := len(b.buf)
	b.buf = append(b.buf, '[')
	for i, it := range items {
		if i > 0 {
			b.buf = append(b.buf, ',')
		}
		b.buf = event.AppendStringBytes(b.buf, it)
	}
	b.buf = append(b.buf, ']')
	return b.buf[start:len(b.buf):len(b.buf)]
}

// addURL sets url.original and, as Elasticsearch's uri_parts processor does in the
// Filebeat modules, url.path, url.query, url.fragment, url.extension and, for absolute
// URLs (forward proxies), url.scheme, url.domain and url.port, in sorted key order.
func addURL(e *event.Event, u []byte) {
	var scheme, domain, fragment, path, query, ext []byte
	port := int64(-1)
	rest := u
	if i := bytes.Index(u, []byte("://")); i > 0 && u[0] != '/' {
		scheme = u[:i]
		r := u[i+3:]
		end := 0
		for end < len(r) && r[end] != '/' && r[end] != '?' && r[end] != '#' {
			end++
		}
		hostport := r[:end]
		if at := bytes.LastIndexByte(hostport, '@'); at >= 0 {
			hostport = hostport[at+1:]
		}
		host := hostport
		if c := bytes.LastIndexByte(hostport, ':'); c >= 0 && bytes.IndexByte(hostport[c:], ']') < 0 {
			host = hostport[:c]
			if n, ok := atoi(hostport[c+1:]); ok && n <= 65535 {
				port = n
			}
		}
		domain = bytes.TrimSuffix(bytes.TrimPrefix(host, []byte("[")), []byte("]"))
		rest = r[end:]
	} else if len(u) == 0 || u[0] != '/' {
		rest = nil // "*" (OPTIONS), "host:443" (CONNECT): no parts
	}
	if rest != nil {
		if i := bytes.IndexByte(rest, '#'); i >= 0 {
			fragment = rest[i+1:]
			rest = rest[:i]
		}
		if i := bytes.IndexByte(rest, '?'); i >= 0 {
			query = rest[i+1:]
			rest = rest[:i]
		}
		path = rest
		seg := path[bytes.LastIndexByte(path, '/')+1:]
		if dot := bytes.LastIndexByte(seg, '.'); dot >= 0 && dot+1 < len(seg) {
			ext = seg[dot+1:]
		}
	}
	if len(domain) > 0 {
		e.Add("url.domain", event.Bytes(domain))
	}
	if len(ext) > 0 {
		e.Add("url.extension", event.Bytes(ext))
	}
	if len(fragment) > 0 {
		e.Add("url.fragment", event.Bytes(fragment))
	}
	e.Add("url.original", event.Bytes(u))
	if len(path) > 0 {
		e.Add("url.path", event.Bytes(path))
	}
	if port >= 0 {
		e.Add("url.port", event.Int(port))
	}
	if len(query) > 0 {
		e.Add("url.query", event.Bytes(query))
	}
	if len(scheme) > 0 {
		e.Add("url.scheme", event.Bytes(scheme))
	}
}

// IsIP reports whether b is a textual IPv4 or IPv6 address (leading zeros in IPv6
// groups allowed, as nginx logs them verbatim).
func IsIP(b []byte) bool {
	if bytes.IndexByte(b, ':') >= 0 {
		return isIPv6(b)
	}
	return isIPv4(b)
}

func isIPv4(b []byte) bool {
	parts, n, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || n > 255 {
				return false
			}
			parts++
			n, digits = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || digits == 3 {
			return false
		}
		n = n*10 + int(c-'0')
		digits++
	}
	return parts == 4
}

func isIPv6(b []byte) bool {
	if len(b) < 2 || len(b) > 45 {
		return false
	}
	groups, doubleColon := 0, false
	i := 0
	if b[0] == ':' {
		if b[1] != ':' {
			return false
		}
	}
	for i < len(b) {
		if b[i] == ':' {
			if i+1 < len(b) && b[i+1] == ':' {
				if doubleColon {
					return false
				}
				doubleColon = true
				i += 2
				continue
			}
			if i == 0 || i+1 == len(b) {
				return false
			}
			i++
			continue
		}
		start := i
		for i < len(b) && b[i] != ':' {
			i++
		}
		g := b[start:i]
		if i == len(b) && bytes.IndexByte(g, '.') >= 0 {
			if !isIPv4(g) {
				return false
			}
			groups += 2
			break
		}
		if len(g) == 0 || len(g) > 4 {
			return false
		}
		for _, c := range g {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
		groups++
	}
	if doubleColon {
		return groups < 8
	}
	return groups == 8
}

// isHostname reports whether b looks like a DNS name (letters, digits, '-', '.', '_'),
// so that "unix:" or a garbled field does not become source.domain.
func isHostname(b []byte) bool {
	if len(b) == 0 || len(b) > 253 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// IsPublicIP reports whether the textual IP b is neither private, loopback nor
// link-local; nginx uses it to pick the client from an X-Forwarded-For style list.
func IsPublicIP(b []byte) bool {
	if !IsIP(b) {
		return false
	}
	if bytes.IndexByte(b, ':') >= 0 {
		s := bytes.ToLower(b)
		switch {
		case string(s) == "::1", string(s) == "::":
			return false
		case bytes.HasPrefix(s, []byte("fe8")), bytes.HasPrefix(s, []byte("fe9")),
			bytes.HasPrefix(s, []byte("fea")), bytes.HasPrefix(s, []byte("feb")),
			bytes.HasPrefix(s, []byte("fc")), bytes.HasPrefix(s, []byte("fd")):
			return false
		}
		return true
	}
	var o [4]int
	k := 0
	for _, c := range b {
		if c == '.' {
			k++
			continue
		}
		o[k] = o[k]*10 + int(c-'0')
	}
	switch {
	case o[0] == 10, o[0] == 127, o[0] == 0,
		o[0] == 172 && o[1] >= 16 && o[1] <= 31,
		o[0] == 192 && o[1] == 168,
		o[0] == 169 && o[1] == 254,
		o[0] == 100 && o[1] >= 64 && o[1] <= 127:
		return false
	}
	return true
}
