package s3sink

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// keyPart is one piece of a parsed key template.
type keyPart struct {
	lit   string // literal text, when field and verb are empty
	field string // "event.dataset" or "sink"
	verb  byte   // 'Y', 'm', 'd', 'H', 'M'
}

type keyTemplate []keyPart

// parseKey parses a key template. Only per-object values are allowed: an object
// holds many documents, so a per-document field would have no single value.
func parseKey(s string) (keyTemplate, error) {
	if strings.HasPrefix(s, "/") {
		return nil, errors.New("must not start with '/' (S3 keys are relative to the bucket)")
	}
	var t keyTemplate
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, keyPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed '{' at offset %d", i)
			}
			name := s[i+1 : i+end]
			if name != "event.dataset" && name != "sink" {
				return nil, fmt.Errorf("unknown field {%s} at offset %d: want {event.dataset} or {sink}", name, i)
			}
			flush()
			t = append(t, keyPart{field: name})
			i += end
		case '%':
			if i+1 >= len(s) || !strings.ContainsRune("YmdHM", rune(s[i+1])) {
				return nil, fmt.Errorf("unknown time verb at offset %d: want %%Y, %%m, %%d, %%H or %%M", i)
			}
			flush()
			t = append(t, keyPart{verb: s[i+1]})
			i++
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// render returns the key prefix of an object of dataset whose first batch was
// stored at first.
func (t keyTemplate) render(dataset, sink string, first time.Time) string {
	first = first.UTC()
	var b strings.Builder
	for _, p := range t {
		switch {
		case p.field == "event.dataset":
			b.WriteString(dataset)
		case p.field == "sink":
			b.WriteString(sink)
		case p.verb == 'Y':
			fmt.Fprintf(&b, "%04d", first.Year())
		case p.verb == 'm':
			fmt.Fprintf(&b, "%02d", int(first.Month()))
		case p.verb == 'd':
			fmt.Fprintf(&b, "%02d", first.Day())
		case p.verb == 'H':
			fmt.Fprintf(&b, "%02d", first.Hour())
		case p.verb == 'M':
			fmt.Fprintf(&b, "%02d", first.Minute())
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// formatSeqs writes sorted sequences as ranges: "5-9,12,14-15".
func formatSeqs(seqs []uint64) string {
	var b strings.Builder
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(seqs[i], 10))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.FormatUint(seqs[j], 10))
		}
		i = j + 1
	}
	return b.String()
}

// maxSeqRanges bounds what parseSeqs expands, so a corrupt manifest cannot exhaust
// memory.
const maxSeqRanges = 1 << 24

// parseSeqs reads formatSeqs's output.
func parseSeqs(s string) ([]uint64, error) {
	var out []uint64
	if s == "" {
		return nil, nil
	}
	for r := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad sequence %q", r)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("bad sequence range %q", r)
			}
		}
		if b-a > maxSeqRanges || uint64(len(out))+b-a > maxSeqRanges {
			return nil, fmt.Errorf("sequence range %q too long", r)
		}
		for q := a; ; q++ {
			out = append(out, q)
			if q == b {
				break
			}
		}
	}
	if !slices.IsSorted(out) {
		return nil, errors.New("sequences not sorted")
	}
	return out, nil
}
