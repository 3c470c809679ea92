package syslogparse

import "time"

// parseRFC3339 parses YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm) with at most maxFrac
// fractional digits (6 for RFC 5424's TIME-SECFRAC), rejecting impossible dates
// (September 31, February 29 of a common year). A leap second (:60) is accepted and
// becomes the first instant of the next minute. The fraction is kept to the
// nanosecond and the offset applied; the result is in UTC.
func parseRFC3339(b []byte, maxFrac int) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := num(b[0:4])
	mon, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mon < 1 || mon > 12 || day < 1 ||
		day > daysIn(mon, year) || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	i := 19
	nsec := 0
	if b[i] == '.' {
		i++
		digits := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if digits == maxFrac {
				return time.Time{}, false
			}
			nsec = nsec*10 + int(b[i]-'0')
			digits++
			i++
		}
		if digits == 0 {
			return time.Time{}, false
		}
		for d := digits; d < 9; d++ {
			nsec *= 10
		}
	}
	z := b[i:]
	var off time.Duration
	switch {
	case len(z) == 1 && z[0] == 'Z':
	case len(z) == 6 && (z[0] == '+' || z[0] == '-') && z[3] == ':':
		zh, ok1 := num(z[1:3])
		zm, ok2 := num(z[4:6])
		if !ok1 || !ok2 || zh > 23 || zm > 59 {
			return time.Time{}, false
		}
		off = time.Duration(zh)*time.Hour + time.Duration(zm)*time.Minute
		if z[0] == '-' {
			off = -off
		}
	default:
		return time.Time{}, false
	}
	return time.Date(year, time.Month(mon), day, hour, minute, sec, nsec, time.UTC).Add(-off), true
}

const months = "JanFebMarAprMayJunJulAugSepOctNovDec"

// bsdTime parses the RFC 3164 timestamp at pos and sets p.ev.Time. It returns the
// offset after the timestamp (and after a zone abbreviation, if one precedes a colon).
//
//	Mmm dd hh:mm:ss            Mmm  d hh:mm:ss     Mmm d hh:mm:ss
//	Mmm dd hh:mm:ss.ffffff     Mmm dd yyyy hh:mm:ss[.fff]     ... hh:mm:ss.fff UTC:
func (p *Parser) bsdTime(rec []byte, pos int) (int, bool) {
	b := rec[pos:]
	if len(b) < 14 {
		return 0, false
	}
	mon := 0
	for m := 0; m < 12; m++ {
		if string(b[:3]) == months[m*3:m*3+3] {
			mon = m + 1
			break
		}
	}
	if mon == 0 || b[3] != ' ' {
		return 0, false
	}
	i := 4
	if b[i] == ' ' {
		i++ // space-padded day
	}
	ds := i
	for i < len(b) && i-ds < 2 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	day, ok := num(b[ds:i])
	if !ok || i >= len(b) || b[i] != ' ' || day < 1 || day > 31 {
		return 0, false
	}
	i++
	year := -1
	if i+5 <= len(b) && isDigits(b[i:i+4]) && b[i+4] == ' ' {
		year, _ = num(b[i : i+4])
		i += 5
	}
	if i+8 > len(b) || b[i+2] != ':' || b[i+5] != ':' {
		return 0, false
	}
	hour, ok1 := num(b[i : i+2])
	minute, ok2 := num(b[i+3 : i+5])
	sec, ok3 := num(b[i+6 : i+8])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 60 {
		return 0, false
	}
	i += 8
	nsec := 0
	if i < len(b) && b[i] == '.' {
		i++
		digits := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if digits < 9 {
				nsec = nsec*10 + int(b[i]-'0')
			}
			digits++
			i++
		}
		if digits == 0 || digits > 9 {
			return 0, false
		}
		for d := digits; d < 9; d++ {
			nsec *= 10
		}
	}
	loc := p.loc
	// A zone abbreviation followed by a colon (Cisco "... 18:48:50.483 UTC:"). Only
	// UTC/GMT are unambiguous; other abbreviations fall back to the configured zone.
	if i+1 < len(b) && b[i] == ' ' {
		j := i + 1
		for j < len(b) && j-i <= 6 && b[j] >= 'A' && b[j] <= 'Z' {
			j++
		}
		if j-i >= 4 && j < len(b) && b[j] == ':' {
			if z := string(b[i+1 : j]); z == "UTC" || z == "GMT" {
				loc = time.UTC
			}
			i = j
		}
	}
	if year < 0 {
		var okYear bool
		year, okYear = p.inferYear(mon, day, hour, minute, sec, nsec, loc)
		if !okYear {
			return 0, false
		}
	} else if day > daysIn(mon, year) {
		return 0, false
	}
	p.ev.Time = time.Date(year, time.Month(mon), day, hour, minute, sec, nsec, loc)
	return pos + i, true
}

// inferYear picks the year for a timestamp without one: the current year in loc,
// unless that puts the timestamp more than a day after now (a December message read
// in January), in which case the previous year. February 29 goes back to the last
// leap year at most three years earlier.
func (p *Parser) inferYear(mon, day, hour, minute, sec, nsec int, loc *time.Location) (int, bool) {
	now := p.now()
	y := now.In(loc).Year()
	limit := now.Add(24 * time.Hour)
	for k := 0; k < 5; k++ {
		year := y - k
		if day > daysIn(mon, year) {
			continue
		}
		if time.Date(year, time.Month(mon), day, hour, minute, sec, nsec, loc).After(limit) {
			continue
		}
		return year, true
	}
	return 0, false
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
