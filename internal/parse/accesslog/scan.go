// Package accesslog scans the NCSA common/combined access-log line that Apache httpd and
// nginx both write, and fills the ECS fields the two share. The format packages
// (apacheparse, nginxparse) decide what the client field means and add their own fields.
//
// The scanner never copies: every []byte in Line points into the scanned line.
package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Line is one scanned access-log line. Absent fields ("-" or missing) are nil, except
// where a flag says otherwise.
type Line struct {
	// Head is everything before the user field: the client address(es), and for
	// Apache's vhost_combined the "host:port" in front. The caller interprets it.
	Head []byte
	// Ident is the RFC 1413 identity (%l), User the authenticated user (%u / $remote_user).
	Ident, User []byte
	// Time is the request time with the log's offset applied (UTC).
	Time time.Time
	// Request is the raw request line between quotes, escapes kept as logged.
	Request []byte
	// Method, URL and Version (without "HTTP/") are split from Request when it looks
	// like an HTTP request line; nil otherwise.
	Method, URL, Version []byte
	// Status is the response status, -1 when logged as "-".
	Status int
	// BodyBytes is the response size, -1 when logged as "-".
	BodyBytes int64
	// Referrer and UserAgent are the combined-format fields; nil when absent or "-".
	Referrer, UserAgent []byte
	// Rest is whatever follows the user agent (nginx's "$http_x_forwarded_for",
	// ingress-nginx upstream fields, ...), trimmed.
	Rest []byte
}

var errNoTime = errors.New("no [time] field: not an access-log line")

// Scan parses line into l. It returns an error naming the field and byte offset when
// the line is not an access-log line.
func Scan(line []byte, l *Line) error {
	*l = Line{Status: -1, BodyBytes: -1}
	open := bytes.IndexByte(line, '[')
	if open < 0 {
		return errNoTime
	}
	// The head is "client ident user " and the fields are separated by single spaces;
	// the client part may itself hold spaces (nginx address lists, Apache vhost), so
	// ident and user are taken from the right.
	if open < 1 || line[open-1] != ' ' {
		return fmt.Errorf("byte %d: expected a space before [time]", open)
	}
	head := line[:open-1]
	sp := bytes.LastIndexByte(head, ' ')
	if sp < 0 {
		return fmt.Errorf("byte %d: expected client, ident and user before [time]", open)
	}
	l.User = dash(head[sp+1:])
	head = head[:sp]
	sp = bytes.LastIndexByte(head, ' ')
	if sp < 0 {
		return fmt.Errorf("byte %d: expected client, ident and user before [time]", open)
	}
	l.Ident = dash(head[sp+1:])
	l.Head = bytes.TrimSpace(head[:sp])
	if len(l.Head) == 0 {
		return errors.New("byte 0: empty client address")
	}

	pos := open + 1
	end := bytes.IndexByte(line[pos:], ']')
	if end < 0 {
		return fmt.Errorf("byte %d: unterminated [time]", open)
	}
	t, ok := ParseTime(line[pos : pos+end])
	if !ok {
		return fmt.Errorf("byte %d: invalid time %q, want dd/Mon/yyyy:hh:mm:ss +zzzz", pos, line[pos:pos+end])
	}
	l.Time = t
	pos += end + 1

	if !hasPrefix(line[pos:], ' ', '"') {
		return fmt.Errorf("byte %d: expected \"request\" after [time]", pos)
	}
	req, next, ok := quoted(line, pos+2)
	if !ok {
		return fmt.Errorf("byte %d: unterminated quoted request", pos+1)
	}
	l.Request = req
	splitRequest(l)
	pos = next

	// Status and size.
	tok, next, ok := token(line, pos)
	if !ok {
		return fmt.Errorf("byte %d: expected status after request", pos)
	}
	if n, isNum := atoi(tok); isNum && len(tok) <= 3 {
		l.Status = int(n)
	} else if !isDash(tok) {
		return fmt.Errorf("byte %d: invalid status %q", pos+1, tok)
	}
	pos = next
	tok, next, ok = token(line, pos)
	if !ok {
		return fmt.Errorf("byte %d: expected response size after status", pos)
	}
	if n, isNum := atoi(tok); isNum {
		l.BodyBytes = n
	} else if !isDash(tok) {
		return fmt.Errorf("byte %d: invalid response size %q", pos+1, tok)
	}
	pos = next

	// Combined: "referrer" "user agent"; some writers log a bare "-" for either.
	for field := 0; field < 2 && pos < len(line) && line[pos] == ' '; field++ {
		var val []byte
		switch {
		case pos+1 < len(line) && line[pos+1] == '"':
			v, n, ok := quoted(line, pos+2)
			if !ok {
				return fmt.Errorf("byte %d: unterminated quoted field", pos+1)
			}
			val, pos = v, n
		case pos+1 < len(line) && line[pos+1] == '-' && (pos+2 == len(line) || line[pos+2] == ' '):
			pos += 2
		default:
			field = 2 // not a combined field: leave it to Rest
			continue
		}
		if field == 0 {
			l.Referrer = nonEmpty(dash(val))
		} else {
			l.UserAgent = nonEmpty(dash(val))
		}
	}
	l.Rest = bytes.TrimSpace(line[pos:])
	return nil
}

// quoted returns the contents of the quoted field whose first content byte is at
// start, and the offset just after the closing quote. A backslash escapes the next
// byte (Apache writes \" and \\); the escapes are kept as logged.
func quoted(line []byte, start int) ([]byte, int, bool) {
	for i := start; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '"':
			// A quote ends the field only where a field may end; otherwise it is
			// an unescaped quote inside the value (seen from some proxies).
			if i+1 == len(line) || line[i+1] == ' ' {
				return line[start:i], i + 1, true
			}
		}
	}
	return nil, 0, false
}

// token returns the space-preceded token at pos (line[pos] must be ' ').
func token(line []byte, pos int) ([]byte, int, bool) {
	if pos >= len(line) || line[pos] != ' ' {
		return nil, 0, false
	}
	pos++
	end := pos
	for end < len(line) && line[end] != ' ' {
		end++
	}
	if end == pos {
		return nil, 0, false
	}
	return line[pos:end], end, true
}

// splitRequest splits "METHOD URL HTTP/x.y" (the version is optional, the URL may
// contain spaces). Anything else ("-", "", binary garbage from scanners) is left
// unsplit.
func splitRequest(l *Line) {
	r := l.Request
	sp := bytes.IndexByte(r, ' ')
	if sp <= 0 || sp > 24 {
		return
	}
	for _, c := range r[:sp] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return
		}
	}
	rest := r[sp+1:]
	if last := bytes.LastIndexByte(rest, ' '); last >= 0 && bytes.HasPrefix(rest[last+1:], []byte("HTTP/")) {
		l.Version = rest[last+6:]
		rest = rest[:last]
	}
	if len(rest) == 0 {
		l.Version = nil
		return
	}
	l.Method, l.URL = r[:sp], rest
}

const months = "JanFebMarAprMayJunJulAugSepOctNovDec"

// ParseTime parses the access-log time "10/Oct/2000:13:55:36 -0700" (optionally with
// a fraction after the seconds), and, as writers with a custom time format produce,
// RFC 3339. The result is in UTC.
func ParseTime(b []byte) (time.Time, bool) {
	if len(b) >= 20 && b[4] == '-' {
		t, err := time.Parse(time.RFC3339Nano, string(b))
		if err != nil {
			return time.Time{}, false
		}
		return t.UTC(), true
	}
	if len(b) < 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' {
		return time.Time{}, false
	}
	day, ok1 := num(b[0:2])
	mon := monthIndex(b[3:6])
	year, ok2 := num(b[7:11])
	hour, ok3 := num(b[12:14])
	minute, ok4 := num(b[15:17])
	sec, ok5 := num(b[18:20])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || mon == 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	i := 20
	nsec := 0
	if b[i] == '.' || b[i] == ',' {
		i++
		digits := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if digits < 9 {
				nsec = nsec*10 + int(b[i]-'0')
				digits++
			}
			i++
		}
		if digits == 0 {
			return time.Time{}, false
		}
		for ; digits < 9; digits++ {
			nsec *= 10
		}
	}
	z := b[i:]
	if len(z) != 6 || z[0] != ' ' || (z[1] != '+' && z[1] != '-') {
		return time.Time{}, false
	}
	zh, ok6 := num(z[2:4])
	zm, ok7 := num(z[4:6])
	if !ok6 || !ok7 || zm > 59 {
		return time.Time{}, false
	}
	if day > daysIn(mon, year) {
		return time.Time{}, false
	}
	off := time.Duration(zh)*time.Hour + time.Duration(zm)*time.Minute
	if z[1] == '-' {
		off = -off
	}
	t := time.Date(year, time.Month(mon), day, hour, minute, sec, nsec, time.UTC).Add(-off)
	return t, true
}

func monthIndex(b []byte) int {
	for i := 0; i < 12; i++ {
		if string(b) == months[i*3:i*3+3] {
			return i + 1
		}
	}
	return 0
}

func daysIn(mon, year int) int {
	return time.Date(year, time.Month(mon)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func num(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

// atoi parses a non-negative decimal of up to 18 digits.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDash(b []byte) bool { return len(b) == 1 && b[0] == '-' }

func dash(b []byte) []byte {
	if isDash(b) {
		return nil
	}
	return b
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func hasPrefix(b []byte, c0, c1 byte) bool { return len(b) >= 2 && b[0] == c0 && b[1] == c1 }
