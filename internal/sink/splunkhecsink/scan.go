package splunkhecsink

import (
	"github.com/vigil-sec/vigil/internal/sink/docscan"

	"bytes"
	"strconv"
	"time"
)

// The scanner below reads a few fields of an ECS document without decoding it. It
// is the same technique as elasticsearchsink's (a shared package would be the
// place for both once a third sink needs it).

// appendEpoch appends the HEC "time" value of an @timestamp token: seconds since
// the epoch with up to six fraction digits (Splunk keeps microseconds), trailing
// zeros dropped. ok is false when the token is absent or not RFC 3339.
func appendEpoch(dst, tok []byte) ([]byte, bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return dst, false
	}
	in := tok[1 : len(tok)-1]
	// Vigil writes UTC with a Z: read the digits directly and copy the fraction as
	// written, so no precision is lost to floating point.
	if len(in) >= 20 && in[len(in)-1] == 'Z' && in[4] == '-' && in[7] == '-' && in[10] == 'T' && in[13] == ':' && in[16] == ':' {
		y, ok1 := docscan.Digits(in[0:4])
		mo, ok2 := docscan.Digits(in[5:7])
		d, ok3 := docscan.Digits(in[8:10])
		h, ok4 := docscan.Digits(in[11:13])
		mi, ok5 := docscan.Digits(in[14:16])
		s, ok6 := docscan.Digits(in[17:19])
		frac := in[19 : len(in)-1]
		okFrac := len(frac) == 0 || (frac[0] == '.' && len(frac) > 1)
		if okFrac && len(frac) > 1 {
			_, okFrac = docscan.Digits(frac[1:])
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && okFrac && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && s <= 60 {
			sec := time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC).Unix()
			dst = strconv.AppendInt(dst, sec, 10)
			if len(frac) > 1 {
				f := frac[1:min(len(frac), 7)]
				f = bytes.TrimRight(f, "0")
				if len(f) > 0 {
					dst = append(dst, '.')
					dst = append(dst, f...)
				}
			}
			return dst, true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(in))
	if err != nil {
		return dst, false
	}
	return appendTime(dst, t), true
}

// appendTime appends t as HEC epoch seconds with microseconds.
func appendTime(dst []byte, t time.Time) []byte {
	dst = strconv.AppendInt(dst, t.Unix(), 10)
	if us := t.Nanosecond() / 1000; us > 0 {
		var buf [7]byte
		buf[0] = '.'
		for i := 6; i >= 1; i-- {
			buf[i] = byte('0' + us%10)
			us /= 10
		}
		dst = append(dst, bytes.TrimRight(buf[:], "0")...)
	}
	return dst
}
