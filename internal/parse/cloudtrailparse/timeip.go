package cloudtrailparse

import (
	"net/netip"
	"time"
)

// parseTime reads an RFC 3339 timestamp ("2014-07-16T15:49:27Z", with an optional
// fraction of up to nine digits and a Z or ±hh:mm zone) without allocating, which
// time.Parse does not promise. The result is in UTC.
func parseTime(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	i := 19
	nsec := 0
	if b[i] == '.' {
		i++
		start := i
		scale := 100_000_000
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 9 {
				nsec += int(b[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == start {
			return time.Time{}, false
		}
	}
	if i >= len(b) {
		return time.Time{}, false
	}
	offset := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return time.Time{}, false
		}
		h, okh := digits(b[i+1 : i+3])
		m, okm := digits(b[i+4 : i+6])
		if !okh || !okm || h > 23 || m > 59 {
			return time.Time{}, false
		}
		offset = (h*60 + m) * 60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(b) {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Second)
	}
	return t, true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// isIP reports whether b is an IP address literal that Elasticsearch's ip type accepts.
// sourceIPAddress is often a service name ("AWS Internal", "ec2.amazonaws.com"), and
// anonymised samples carry dotted quads with leading zeros ("035.249.253.232") that are
// ambiguous (octal in some parsers); those stay in source.address only.
func isIP(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c == ':' {
			// IPv6 is rare here; netip is exact, and the conversion's allocation is
			// acceptable on this path. A zone ("%eth0") is not an ip-type value.
			a, err := netip.ParseAddr(string(b))
			return err == nil && a.Zone() == ""
		}
	}
	return isIPv4(b)
}

func isIPv4(b []byte) bool {
	parts, n, width := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if width == 0 || n > 255 {
				return false
			}
			parts++
			n, width = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || (width > 0 && n == 0) || width >= 3 {
			return false // not a digit, a leading zero, or too long
		}
		n = n*10 + int(c-'0')
		width++
	}
	return parts == 4
}
