package syslogparse

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

// Parser parses one syslog message per record. It reuses its event and scratch
// buffers between records, so it is not safe for concurrent use.
type Parser struct {
	loc *time.Location
	now func() time.Time

	ev     event.Event
	sd     []byte   // JSON of log.syslog.structured_data for the current message
	sdIDs  [][]byte // SD-IDs seen, to reject duplicates
	params [][]byte // PARAM-NAMEs of the current SD element
}

// New builds a parser from validated options.
func New(cfg *Config) (*Parser, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Parser{loc: loc, now: now}, nil
}

// header holds the fields common to both syslog flavours, as slices of the record.
type header struct {
	pri                          int // -1 when the message has no PRI
	version                      []byte
	hostname, app, procid, msgid []byte
	seq                          []byte // Cisco-style sequence number
	msg                          []byte
	hasSD                        bool
}

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	// A trailing newline is framing, not message (TCP newline framing, files).
	for len(rec) > 0 && (rec[len(rec)-1] == '\n' || rec[len(rec)-1] == '\r') {
		rec = rec[:len(rec)-1]
	}
	if len(bytes.TrimSpace(rec)) == 0 {
		out.Skip("blank_line")
		return nil
	}
	e := &p.ev
	e.Reset()
	e.Dataset = Dataset
	p.sd = p.sd[:0]
	p.sdIDs = p.sdIDs[:0]
	h := header{pri: -1}

	pos := 0
	if rec[0] == '<' {
		pri, n, err := parsePRI(rec)
		if err != nil {
			return err
		}
		h.pri, pos = pri, n
		// RFC 5424: PRI is followed by VERSION (1-3 digits) and a space.
		d := pos
		for d < len(rec) && d-pos < 4 && rec[d] >= '0' && rec[d] <= '9' {
			d++
		}
		if d > pos && d-pos <= 3 && (d == len(rec) || rec[d] == ' ') {
			if err := p.parse5424(rec, pos, true, &h); err != nil {
				return err
			}
			return p.emit(rec, &h, out)
		}
	}
	if err := p.parse3164(rec, pos, &h); err != nil {
		return err
	}
	return p.emit(rec, &h, out)
}

// emit adds the fields in the encoder's sort order, which makes its sort nearly free.
func (p *Parser) emit(rec []byte, h *header, out parse.Emitter) error {
	e := &p.ev
	if h.seq != nil {
		if n, ok := atoi(h.seq); ok {
			e.Add("event.sequence", event.Int(n))
		}
	}
	if h.hostname != nil {
		e.Add("host.hostname", event.Bytes(h.hostname))
	}
	if h.app != nil {
		e.Add("log.syslog.appname", event.Bytes(h.app))
	}
	fac, sev := h.pri>>3, h.pri&7
	if h.pri >= 0 {
		e.Add("log.syslog.facility.code", event.Int(int64(fac)))
		e.Add("log.syslog.facility.name", event.String(facilityNames[fac]))
	}
	if h.hostname != nil {
		e.Add("log.syslog.hostname", event.Bytes(h.hostname))
	}
	if h.msgid != nil {
		e.Add("log.syslog.msgid", event.Bytes(h.msgid))
	}
	if h.pri >= 0 {
		e.Add("log.syslog.priority", event.Int(int64(h.pri)))
	}
	if h.procid != nil {
		e.Add("log.syslog.procid", event.Bytes(h.procid))
	}
	if h.pri >= 0 {
		e.Add("log.syslog.severity.code", event.Int(int64(sev)))
		e.Add("log.syslog.severity.name", event.String(severityNames[sev]))
	}
	if h.hasSD {
		e.Add("log.syslog.structured_data", event.Raw(p.sd))
	}
	if h.version != nil {
		e.Add("log.syslog.version", event.Bytes(h.version))
	}
	if len(h.msg) > 0 {
		e.Add("message", event.Bytes(h.msg))
	}
	if h.app != nil {
		e.Add("process.name", event.Bytes(h.app))
	}
	if h.procid != nil {
		if pid, ok := atoi(h.procid); ok {
			e.Add("process.pid", event.Int(pid))
		}
	}
	return out.Emit(e)
}

// parsePRI reads "<N>" with N in 0..191 and no leading zeros (RFC 5424 §6.2.1).
func parsePRI(rec []byte) (int, int, error) {
	i := 1
	n := 0
	for i < len(rec) && i <= 4 && rec[i] >= '0' && rec[i] <= '9' {
		n = n*10 + int(rec[i]-'0')
		i++
	}
	digits := i - 1
	switch {
	case digits == 0 || i >= len(rec) || rec[i] != '>':
		return 0, 0, fmt.Errorf("syslog: byte %d: expected a priority <0-191>", i)
	case digits > 3 || n > 191:
		return 0, 0, fmt.Errorf("syslog: byte 1: priority %s out of range 0-191", rec[1:i])
	case digits > 1 && rec[1] == '0':
		return 0, 0, fmt.Errorf("syslog: byte 1: priority %s has a leading zero", rec[1:i])
	}
	return n, i + 1, nil
}

var errNoTimestamp = errors.New("no timestamp")

// parse5424 parses an RFC 5424 message from VERSION (withVersion) or from TIMESTAMP
// (a header without PRI and VERSION, as some relays forward it). It is strict: a
// field that breaks the grammar rejects the message, naming the field and offset.
func (p *Parser) parse5424(rec []byte, pos int, withVersion bool, h *header) error {
	if withVersion {
		start := pos
		for pos < len(rec) && rec[pos] >= '0' && rec[pos] <= '9' {
			pos++
		}
		if pos == start || pos-start > 3 || rec[start] == '0' {
			return fmt.Errorf("syslog: byte %d: expected VERSION 1-999", start)
		}
		h.version = rec[start:pos]
		if pos == len(rec) {
			return fmt.Errorf("syslog: byte %d: message ends after VERSION", pos)
		}
		pos++ // the space, checked by the caller
	}
	// TIMESTAMP
	tsEnd := field(rec, pos)
	ts := rec[pos:tsEnd]
	if !isNil(ts) {
		t, ok := parseRFC3339(ts, 6)
		if !ok {
			return fmt.Errorf("syslog: byte %d: invalid RFC 5424 TIMESTAMP %q", pos, ts)
		}
		p.ev.Time = t
	}
	pos = tsEnd
	var err error
	if h.hostname, pos, err = headerField(rec, pos, 255, "HOSTNAME"); err != nil {
		return err
	}
	if h.app, pos, err = headerField(rec, pos, 48, "APP-NAME"); err != nil {
		return err
	}
	if h.procid, pos, err = headerField(rec, pos, 128, "PROCID"); err != nil {
		return err
	}
	if h.msgid, pos, err = headerField(rec, pos, 32, "MSGID"); err != nil {
		return err
	}
	if pos >= len(rec) || rec[pos] != ' ' {
		return fmt.Errorf("syslog: byte %d: expected STRUCTURED-DATA", pos)
	}
	pos++
	if pos < len(rec) && rec[pos] == '-' {
		pos++
	} else if pos < len(rec) && rec[pos] == '[' {
		if pos, err = p.parseSD(rec, pos); err != nil {
			return err
		}
		h.hasSD = true
	} else {
		return fmt.Errorf("syslog: byte %d: expected STRUCTURED-DATA \"-\" or \"[\"", pos)
	}
	if pos == len(rec) {
		return nil
	}
	if rec[pos] != ' ' {
		return fmt.Errorf("syslog: byte %d: expected a space before MSG", pos)
	}
	msg := rec[pos+1:]
	// The UTF-8 BOM marks the encoding of MSG; it is not part of the text.
	msg = bytes.TrimPrefix(msg, []byte("\xef\xbb\xbf"))
	h.msg = msg
	return nil
}

// field returns the end of the space-delimited field starting at pos.
func field(rec []byte, pos int) int {
	for pos < len(rec) && rec[pos] != ' ' {
		pos++
	}
	return pos
}

// headerField reads " FIELD" at pos: NILVALUE or 1..max printable US-ASCII bytes.
func headerField(rec []byte, pos, max int, name string) ([]byte, int, error) {
	if pos >= len(rec) || rec[pos] != ' ' {
		return nil, 0, fmt.Errorf("syslog: byte %d: expected a space before %s", pos, name)
	}
	pos++
	end := pos
	for end < len(rec) && rec[end] != ' ' {
		if rec[end] < 33 || rec[end] > 126 {
			return nil, 0, fmt.Errorf("syslog: byte %d: %s holds a byte outside printable US-ASCII", end, name)
		}
		end++
	}
	v := rec[pos:end]
	switch {
	case len(v) == 0:
		return nil, 0, fmt.Errorf("syslog: byte %d: empty %s (use \"-\")", pos, name)
	case len(v) > max:
		return nil, 0, fmt.Errorf("syslog: byte %d: %s longer than %d bytes", pos, name, max)
	case isNil(v):
		return nil, end, nil
	}
	return v, end, nil
}

func isNil(b []byte) bool { return len(b) == 1 && b[0] == '-' }

// parseSD parses STRUCTURED-DATA at pos (rec[pos] == '[') into p.sd as a JSON object
// {SD-ID: {PARAM-NAME: value}} with the \" \\ \] escapes resolved. It returns the
// offset after the last element.
func (p *Parser) parseSD(rec []byte, pos int) (int, error) {
	p.sd = append(p.sd, '{')
	for pos < len(rec) && rec[pos] == '[' {
		pos++
		start := pos
		for pos < len(rec) && isSDName(rec[pos]) {
			pos++
		}
		id := rec[start:pos]
		if len(id) == 0 || len(id) > 32 {
			return 0, fmt.Errorf("syslog: byte %d: invalid SD-ID (1-32 printable bytes except '=', ' ', ']', '\"')", start)
		}
		for _, seen := range p.sdIDs {
			if bytes.Equal(seen, id) {
				return 0, fmt.Errorf("syslog: byte %d: duplicate SD-ID %q", start, id)
			}
		}
		p.sdIDs = append(p.sdIDs, id)
		if len(p.sdIDs) > 1 {
			p.sd = append(p.sd, ',')
		}
		p.sd = event.AppendStringBytes(p.sd, id)
		p.sd = append(p.sd, ':', '{')
		paramsStart := len(p.sd)
		p.params = p.params[:0]
		for pos < len(rec) && rec[pos] == ' ' {
			pos++
			start := pos
			for pos < len(rec) && isSDName(rec[pos]) {
				pos++
			}
			name := rec[start:pos]
			if len(name) == 0 || len(name) > 32 || pos >= len(rec) || rec[pos] != '=' {
				return 0, fmt.Errorf("syslog: byte %d: expected SD-PARAM name=\"value\" in [%s]", start, id)
			}
			pos++
			// Tolerate spaces after '=' (seen from some senders; VRL accepts it).
			for pos < len(rec) && rec[pos] == ' ' {
				pos++
			}
			if pos >= len(rec) || rec[pos] != '"' {
				return 0, fmt.Errorf("syslog: byte %d: expected '\"' to open the value of %s in [%s]", pos, name, id)
			}
			pos++
			vstart := pos
			escaped := false
			for ; pos < len(rec); pos++ {
				c := rec[pos]
				if c == '\\' {
					if pos+1 >= len(rec) || (rec[pos+1] != '"' && rec[pos+1] != '\\' && rec[pos+1] != ']') {
						return 0, fmt.Errorf("syslog: byte %d: '\\' must escape '\"', '\\' or ']' in the value of %s", pos, name)
					}
					escaped = true
					pos++
					continue
				}
				if c == ']' {
					return 0, fmt.Errorf("syslog: byte %d: unescaped ']' in the value of %s", pos, name)
				}
				if c == '"' {
					break
				}
			}
			if pos >= len(rec) {
				return 0, fmt.Errorf("syslog: byte %d: unterminated value of %s in [%s]", vstart, name, id)
			}
			value := rec[vstart:pos]
			pos++
			// A repeated PARAM-NAME keeps the last value, so the object has unique keys.
			dup := false
			for _, seen := range p.params {
				if bytes.Equal(seen, name) {
					dup = true
					break
				}
			}
			if dup {
				p.sd = dropParam(p.sd, paramsStart, name)
			} else {
				p.params = append(p.params, name)
			}
			if len(p.sd) > paramsStart {
				p.sd = append(p.sd, ',')
			}
			p.sd = event.AppendStringBytes(p.sd, name)
			p.sd = append(p.sd, ':')
			if escaped {
				p.sd = appendUnescaped(p.sd, value)
			} else {
				p.sd = event.AppendStringBytes(p.sd, value)
			}
		}
		if pos >= len(rec) || rec[pos] != ']' {
			return 0, fmt.Errorf("syslog: byte %d: expected ']' to close [%s]", pos, id)
		}
		pos++
		p.sd = append(p.sd, '}')
	}
	p.sd = append(p.sd, '}')
	return pos, nil
}

// dropParam removes an earlier "name":"value" member from the params object being
// built in sd[start:]. Params are few; a linear scan of the JSON is enough.
func dropParam(sd []byte, start int, name []byte) []byte {
	if len(sd) == start {
		return sd
	}
	var key []byte
	key = event.AppendStringBytes(key, name)
	key = append(key, ':')
	i := start
	for i < len(sd) {
		// Each member is "key":"value" separated by ','; strings are escaped, so a
		// quote preceded by an odd number of backslashes is inside a string.
		memberStart := i
		end := skipString(sd, skipString(sd, i)+1)
		if bytes.HasPrefix(sd[memberStart:], key) {
			next := end
			if next < len(sd) && sd[next] == ',' {
				next++
			} else if memberStart > start {
				memberStart-- // drop the preceding comma instead
			}
			return append(sd[:memberStart], sd[next:]...)
		}
		i = end
		if i < len(sd) && sd[i] == ',' {
			i++
		}
	}
	return sd
}

// skipString returns the offset after the JSON string starting at sd[i] == '"'.
func skipString(sd []byte, i int) int {
	i++
	for i < len(sd) {
		switch sd[i] {
		case '\\':
			i += 2
			continue
		case '"':
			return i + 1
		}
		i++
	}
	return i
}

// appendUnescaped appends value as a JSON string with the SD escapes resolved.
func appendUnescaped(dst, value []byte) []byte {
	var tmp [256]byte
	buf := tmp[:0]
	for i := 0; i < len(value); i++ {
		if value[i] == '\\' && i+1 < len(value) {
			i++
		}
		buf = append(buf, value[i])
	}
	return event.AppendStringBytes(dst, buf)
}

func isSDName(c byte) bool { return c >= 33 && c <= 126 && c != '=' && c != ']' && c != '"' }

// parse3164 parses a BSD syslog message from pos (after PRI, if any):
//
//	[seq: ][*|.]TIMESTAMP [HOSTNAME] [TAG[PID]:] MSG
//
// TIMESTAMP is "Mmm dd hh:mm:ss[.frac]", optionally with a year after the day
// ("Mmm dd yyyy hh:mm:ss", Cisco and others) and a zone abbreviation before a colon
// (Cisco "*Mar  1 18:48:50.483 UTC:"), or RFC 3339 (rsyslog's high-precision format).
func (p *Parser) parse3164(rec []byte, pos int, h *header) error {
	// Cisco IOS puts sequence numbers first: "<189>123: *Mar  1 ...", "37: 000036: ...".
	for k := 0; k < 2; k++ {
		d := pos
		for d < len(rec) && rec[d] >= '0' && rec[d] <= '9' {
			d++
		}
		if d > pos && d+1 < len(rec) && rec[d] == ':' && rec[d+1] == ' ' {
			h.seq = rec[pos:d]
			pos = d + 2
			continue
		}
		break
	}
	if pos < len(rec) && (rec[pos] == '*' || rec[pos] == '.') {
		pos++ // Cisco: clock not synchronised / lost sync
	}
	var (
		end int
		ok  bool
	)
	if len(rec)-pos >= 20 && isDigits(rec[pos:pos+4]) && rec[pos+4] == '-' {
		tsEnd := field(rec, pos)
		var t time.Time
		t, ok = parseRFC3339(rec[pos:tsEnd], 9)
		if !ok {
			return fmt.Errorf("syslog: byte %d: invalid timestamp %q", pos, rec[pos:tsEnd])
		}
		// A relay that drops PRI and VERSION but keeps the RFC 5424 header.
		if h.pri < 0 {
			save := *h
			if err := p.parse5424(rec, pos, false, h); err == nil {
				return nil
			}
			*h = save
			p.sd, p.sdIDs = p.sd[:0], p.sdIDs[:0]
		}
		p.ev.Time = t
		end = tsEnd
	} else {
		end, ok = p.bsdTime(rec, pos)
		if !ok {
			return fmt.Errorf("syslog: byte %d: %w: expected \"Mmm dd hh:mm:ss\" or RFC 3339 after the priority", pos, errNoTimestamp)
		}
	}
	pos = end
	if pos < len(rec) && rec[pos] == ':' {
		// "Mar  1 18:48:50.483 UTC: %SYS-5-CONFIG_I: ..." has no hostname.
		pos++
		h.msg = trimOneSpace(rec[pos:])
		return nil
	}
	if pos < len(rec) && rec[pos] != ' ' {
		return fmt.Errorf("syslog: byte %d: expected a space after the timestamp", pos)
	}
	for pos < len(rec) && rec[pos] == ' ' {
		pos++
	}
	rest := rec[pos:]
	if len(rest) == 0 {
		return nil
	}
	if rest[0] == '%' {
		h.msg = rest // Cisco mnemonic, no hostname or tag
		return nil
	}
	tok := rest[:field(rest, 0)]
	if tok[len(tok)-1] == ':' {
		after := trimOneSpace(rest[len(tok):])
		if len(after) > 0 && after[0] == '%' {
			// "router1: %LINK-3-UPDOWN: ..." (hostname with a colon, Cisco origin-id).
			h.hostname = tok[:len(tok)-1]
			h.msg = after
			return nil
		}
		// No hostname: the first token is the TAG ("su: ...", "haproxy[73411]: ...").
		if splitTag(tok[:len(tok)-1], h) {
			h.msg = after
			return nil
		}
	}
	if !printable(tok) {
		return fmt.Errorf("syslog: byte %d: HOSTNAME holds a byte outside printable US-ASCII", pos)
	}
	h.hostname = tok
	rest = rest[len(tok):]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	// Cisco ASA: "hostname : %ASA-6-...".
	if len(rest) >= 2 && rest[0] == ':' && rest[1] == ' ' {
		rest = rest[2:]
	}
	if len(rest) == 0 {
		return nil
	}
	if rest[0] == '%' {
		h.msg = rest
		return nil
	}
	tok = rest[:field(rest, 0)]
	switch {
	case len(tok) == 0:
		h.msg = rest
	case tok[len(tok)-1] == ':' && splitTag(tok[:len(tok)-1], h):
		h.msg = trimOneSpace(rest[len(tok):])
	case tok[len(tok)-1] == ']' && hasPID(tok) && splitTag(tok, h):
		// "host prog[123] message" without the colon.
		h.msg = trimOneSpace(rest[len(tok):])
	default:
		h.msg = rest // no TAG: the message starts here
	}
	return nil
}

// splitTag splits "name[pid]" or "name" into APP-NAME and PROCID.
func splitTag(tag []byte, h *header) bool {
	if len(tag) == 0 || !printable(tag) {
		return false
	}
	if tag[len(tag)-1] == ']' {
		if open := bytes.LastIndexByte(tag, '['); open > 0 {
			h.app = tag[:open]
			if pid := tag[open+1 : len(tag)-1]; len(pid) > 0 {
				h.procid = pid
			}
			return true
		}
	}
	h.app = tag
	return true
}

// hasPID reports whether tok ends in "[digits]" after a non-empty name.
func hasPID(tok []byte) bool {
	open := bytes.LastIndexByte(tok, '[')
	return open > 0 && open+2 < len(tok) && isDigits(tok[open+1:len(tok)-1])
}

func trimOneSpace(b []byte) []byte {
	if len(b) > 0 && b[0] == ' ' {
		return b[1:]
	}
	return b
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 || !isDigits(b) {
		return 0, false
	}
	var n int64
	for _, c := range b {
		n = n*10 + int64(c-'0')
	}
	return n, true
}

var facilityNames = [24]string{
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
	"authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
}

var severityNames = [8]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
