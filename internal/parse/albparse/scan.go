package albparse

// This file splits a line into fields without copying it; the fields are decoded with
// the allocation-free helpers of package fieldscan.

// maxFields bounds the fields kept per line. The longest current layout (ALB with the
// 2025 transform fields) has 33; later AWS additions are tolerated and ignored.
const maxFields = 48

// field is one space-separated token of a line; quoted tokens have their quotes removed.
type field struct {
	b      []byte
	off    int // byte offset of the token in the line, for error messages
	quoted bool
}

// isDash reports whether a field is AWS's "no value" marker.
func (f field) isDash() bool { return len(f.b) == 1 && f.b[0] == '-' }

// tokenize splits line into fields. A token starting with '"' runs to the next '"' that
// is followed by a space or the end of the line, so quoted values may hold spaces and
// even quotes (ALB does not escape them). It returns the number of fields found, at
// most maxFields (extra fields are counted in total but not kept), or the offset of an
// unterminated quote.
func tokenize(line []byte, out *[maxFields]field) (n, total int, badQuote int) {
	i := 0
	for i < len(line) {
		// Runs of spaces separate fields; AWS writes exactly one, but be lenient.
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i >= len(line) {
			break
		}
		start := i
		var f field
		if line[i] == '"' {
			j := i + 1
			for {
				// A backslash escapes the next byte: ALB writes \" for a quote inside
				// the user agent, and it must not end the field.
				for j < len(line) && line[j] != '"' {
					if line[j] == '\\' {
						j++
					}
					j++
				}
				if j >= len(line) {
					return n, total, start
				}
				if j+1 == len(line) || line[j+1] == ' ' {
					break
				}
				j++
			}
			f = field{b: line[i+1 : j], off: start, quoted: true}
			i = j + 1
		} else {
			for i < len(line) && line[i] != ' ' {
				i++
			}
			f = field{b: line[start:i], off: start}
		}
		if n < maxFields {
			out[n] = f
			n++
		}
		total++
	}
	return n, total, -1
}
