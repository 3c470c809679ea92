// Package fieldscan holds the allocation-free helpers the parsers of AWS's
// space-separated access and flow logs (ALB/ELB/NLB, CloudFront, VPC flow logs) are
// built on: a record is only ever sliced, never copied, and numbers, times and
// addresses are decoded by hand because strconv, time.Parse and net/netip take strings
// and would make the hot path allocate. How a line splits into fields is left to each
// format's package.
package fieldscan

import (
	"time"

	"github.com/vigil-sec/vigil/internal/event"
)

// ParseInt parses an optionally signed decimal integer of at most 18 digits.
func ParseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
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
	if neg {
		n = -n
	}
	return n, true
}

// pow10 holds the powers of ten that are exact doubles.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// ParseDecimal parses a plain decimal such as "0.000086" or "-1". With at most 15
// significant digits the mantissa and the power of ten are exact doubles, so the one
// division is correctly rounded, the same result strconv.ParseFloat gives.
func ParseDecimal(b []byte) (float64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var mant int64
	digits, scale := 0, 0
	seenDot := false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits == 0 && c == '0' {
				// leading zeros carry no precision
			} else {
				digits++
			}
			if digits > 15 {
				return 0, false
			}
			mant = mant*10 + int64(c-'0')
			if seenDot {
				scale++
			}
		case c == '.' && !seenDot:
			seenDot = true
		default:
			return 0, false
		}
	}
	if scale >= len(pow10) || (seenDot && len(b) == 1) {
		return 0, false
	}
	f := float64(mant) / pow10[scale]
	if neg {
		f = -f
	}
	return f, true
}

// digits2 parses the two decimal digits at b[i:i+2].
func digits2(b []byte, i int) (int, bool) {
	c0, c1 := b[i], b[i+1]
	if c0 < '0' || c0 > '9' || c1 < '0' || c1 > '9' {
		return 0, false
	}
	return int(c0-'0')*10 + int(c1-'0'), true
}

// ParseTime parses the ISO 8601 forms AWS writes: "2006-01-02T15:04:05" with an
// optional fraction of up to 9 digits and an optional "Z". A time without zone is UTC,
// which is what the NLB logs mean.
func ParseTime(b []byte) (time.Time, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	y1, ok1 := digits2(b, 0)
	y2, ok2 := digits2(b, 2)
	mo, ok3 := digits2(b, 5)
	d, ok4 := digits2(b, 8)
	h, ok5 := digits2(b, 11)
	mi, ok6 := digits2(b, 14)
	s, ok7 := digits2(b, 17)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return time.Time{}, false
	}
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y1*100+y2) || h > 23 || mi > 59 || s > 60 {
		return time.Time{}, false
	}
	rest := b[19:]
	ns := 0
	if len(rest) > 0 && rest[0] == '.' {
		rest = rest[1:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			if n < 9 {
				ns = ns*10 + int(rest[n]-'0')
			}
			n++
		}
		if n == 0 {
			return time.Time{}, false
		}
		for k := n; k < 9; k++ {
			ns *= 10
		}
		rest = rest[n:]
	}
	if len(rest) == 1 && rest[0] == 'Z' {
		rest = rest[1:]
	}
	if len(rest) != 0 {
		return time.Time{}, false
	}
	return time.Date(y1*100+y2, time.Month(mo), d, h, mi, s, ns, time.UTC), true
}

// daysIn returns the number of days in month m of year y.
func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// SplitHostPort splits "ip:port", "[ipv6]:port" and the unbracketed "ipv6:port" ALB
// writes, where the port is whatever follows the last colon.
func SplitHostPort(b []byte) (host, port []byte, ok bool) {
	if len(b) > 0 && b[0] == '[' {
		for i := 1; i < len(b); i++ {
			if b[i] == ']' {
				if i+1 < len(b) && b[i+1] == ':' {
					return b[1:i], b[i+2:], true
				}
				return b[1:i], nil, i+1 == len(b)
			}
		}
		return nil, nil, false
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ':' {
			return b[:i], b[i+1:], i > 0
		}
	}
	return b, nil, len(b) > 0
}

// ParsePort parses a TCP port number.
func ParsePort(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	n, ok := ParseInt(b)
	return n, ok && n >= 0 && n <= 65535 && b[0] != '-' && b[0] != '+'
}

// IPVersion returns 4 or 6 when b is an IPv4 or IPv6 address (no zone), 0 otherwise.
// It is hand-written because net/netip takes a string, and converting the borrowed
// bytes would allocate on every record.
func IPVersion(b []byte) int {
	if isIPv4(b) {
		return 4
	}
	if isIPv6(b) {
		return 6
	}
	return 0
}

// isIPv4 reports whether b is a dotted-quad IPv4 address without leading zeros.
func isIPv4(b []byte) bool {
	parts, val, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || val > 255 {
				return false
			}
			parts++
			val, digits = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || digits == 3 || (digits == 1 && val == 0) {
			return false
		}
		val = val*10 + int(c-'0')
		digits++
	}
	return parts == 4
}

// isIPv6 reports whether b is an IPv6 address (without zone), possibly with an
// embedded IPv4 address in its last 32 bits.
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
		doubleColon = true
		i = 2
		if i == len(b) {
			return true
		}
	}
	for i < len(b) {
		j, hex := i, 0
		for j < len(b) && IsHex(b[j]) {
			j++
			hex++
		}
		if j < len(b) && b[j] == '.' {
			// Embedded IPv4 in the last 32 bits.
			if !isIPv4(b[i:]) {
				return false
			}
			groups += 2
			break
		}
		if hex == 0 || hex > 4 {
			return false
		}
		groups++
		if j == len(b) {
			break
		}
		if b[j] != ':' {
			return false
		}
		j++
		if j < len(b) && b[j] == ':' {
			if doubleColon {
				return false
			}
			doubleColon = true
			j++
			if j == len(b) {
				break
			}
		} else if j == len(b) {
			return false
		}
		i = j
	}
	if doubleColon {
		return groups < 8
	}
	return groups == 8
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// AppendJSONList appends a JSON array of the parts of b split at sep, skipping empty
// parts, to dst. The event borrows the result through event.Raw, which is why the
// parser builds lists in a scratch buffer instead of allocating []string per record.
func AppendJSONList(dst, b []byte, sep byte) []byte {
	dst = append(dst, '[')
	first := true
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != sep {
			i++
		}
		if i > 0 {
			if !first {
				dst = append(dst, ',')
			}
			dst = event.AppendStringBytes(dst, b[:i])
			first = false
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return append(dst, ']')
}
