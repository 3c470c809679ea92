package syslogsource

import (
	"bytes"
	"io"
)

// maxLenDigits is the longest MSG-LEN the framer reads as octet counting; a longer run
// of digits is not a length header but the start of a newline-framed message.
const maxLenDigits = 10

// Frame is one message cut from a TCP stream.
type Frame struct {
	// Msg is the message without its framing (no length header, no trailing LF or
	// CRLF). It aliases the framer's buffer and is valid until the next Fill.
	Msg []byte
	// Size is the message's full size: the announced MSG-LEN for octet counting, the
	// line length for newline framing, or -1 when a line was longer than the buffer
	// and its end was not seen yet.
	Size int
	// Oversized means Msg is only the first max bytes of a longer message; the rest
	// is skipped by the framer.
	Oversized bool
	// Incomplete means the stream ended inside an octet-counted message: Msg is the
	// part that arrived.
	Incomplete bool
}

// Framer cuts a TCP byte stream into syslog messages. Each message's framing is told
// from its first byte (RFC 6587 section 3.4): a digit starts octet counting
// ("MSG-LEN SP MSG"), anything else is a line ended by LF (CRLF accepted). A digit
// run that is not a valid length header (too long, or not followed by a space) is
// read as the start of a line, so no byte is lost to a framing guess. Blank lines are
// skipped.
//
// Memory is bounded: the buffer is allocated once at max + 16 bytes (at least 64 KiB)
// and never grows, whatever the input.
type Framer struct {
	max  int
	buf  []byte
	r, w int // unread data is buf[r:w]
	// skip is the number of bytes of an oversized octet-counted message still to
	// discard; skipLine discards up to the next LF.
	skip     int
	skipLine bool
	eof      bool
}

// NewFramer returns a framer for messages of at most maxMsg bytes.
func NewFramer(maxMsg int) *Framer {
	n := maxMsg + 16
	if n < 64<<10 {
		n = 64 << 10
	}
	return &Framer{max: maxMsg, buf: make([]byte, n)}
}

// Fill reads once from r into the buffer, first moving unread bytes to its start
// (which invalidates frames returned before). It returns what r.Read returned; the
// framer's state survives any error, so the caller may Fill again after a timeout.
// io.EOF marks the end: Next then returns the data left as a last frame.
func (f *Framer) Fill(r io.Reader) (int, error) {
	if f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	n, err := r.Read(f.buf[f.w:])
	f.w += n
	if err == io.EOF {
		f.eof = true
	}
	return n, err
}

// Write appends p as if it had been read, for tests and fuzzing; it returns how
// much fit.
func (f *Framer) Write(p []byte) int {
	if f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	n := copy(f.buf[f.w:], p)
	f.w += n
	return n
}

// End marks the end of the stream: the next calls to Next return what is left.
func (f *Framer) End() { f.eof = true }

// Buffered is the number of bytes read but not yet returned or skipped.
func (f *Framer) Buffered() int { return f.w - f.r }

// Next returns the next message from the bytes already read, or false when more
// bytes are needed (or, after the end, when nothing is left). When it returns false
// before the end, the buffer has room for Fill.
func (f *Framer) Next() (Frame, bool) {
	for {
		data := f.buf[f.r:f.w]
		if f.skip > 0 {
			n := min(f.skip, len(data))
			f.r += n
			f.skip -= n
			if f.skip > 0 {
				return Frame{}, false
			}
			continue
		}
		if f.skipLine {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				f.r = f.w
				return Frame{}, false
			}
			f.r += i + 1
			f.skipLine = false
			continue
		}
		if len(data) == 0 {
			return Frame{}, false
		}
		if c := data[0]; c == '\n' || c == '\r' {
			f.r++
			continue
		}
		if c := data[0]; c >= '1' && c <= '9' {
			fr, done, ok := f.octet(data)
			if done {
				return fr, ok
			}
		}
		return f.line(data)
	}
}

// octet reads an octet-counted message. done is false when data does not start with
// a valid length header, and the message is then read as a line.
func (f *Framer) octet(data []byte) (fr Frame, done, ok bool) {
	n, i := 0, 0
	for i < len(data) && i < maxLenDigits && data[i] >= '0' && data[i] <= '9' {
		n = n*10 + int(data[i]-'0')
		i++
	}
	if i == len(data) && i < maxLenDigits && !f.eof {
		return Frame{}, true, false // the header may go on
	}
	if i == len(data) || data[i] != ' ' {
		return Frame{}, false, false
	}
	hdr := i + 1
	body := data[hdr:]
	if n > f.max {
		if len(body) < f.max && !f.eof {
			return Frame{}, true, false
		}
		take := min(f.max, len(body))
		f.r += hdr + take
		f.skip = n - take
		return Frame{Msg: body[:take], Size: n, Oversized: true, Incomplete: take < f.max}, true, true
	}
	if len(body) < n {
		if !f.eof {
			return Frame{}, true, false
		}
		f.r = f.w
		return Frame{Msg: body, Size: n, Incomplete: true}, true, true
	}
	f.r += hdr + n
	return Frame{Msg: body[:n], Size: n}, true, true
}

// line reads a newline-framed message.
func (f *Framer) line(data []byte) (Frame, bool) {
	i := bytes.IndexByte(data, '\n')
	switch {
	case i >= 0:
		f.r += i + 1
	case len(data) >= f.max+2:
		// No LF, and a message of max bytes would have had one (after a CR at most):
		// the message is longer than max, its end not read yet.
		f.r += f.max
		f.skipLine = true
		return Frame{Msg: data[:f.max], Size: -1, Oversized: true}, true
	case f.eof:
		i = len(data)
		f.r = f.w
	default:
		return Frame{}, false
	}
	msg := data[:i]
	if len(msg) > 0 && msg[len(msg)-1] == '\r' {
		msg = msg[:len(msg)-1]
	}
	if len(msg) > f.max {
		return Frame{Msg: msg[:f.max], Size: len(msg), Oversized: true}, true
	}
	return Frame{Msg: msg, Size: len(msg)}, true
}
