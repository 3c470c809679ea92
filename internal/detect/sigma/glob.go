package sigma

import (
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
)

// glob is a compiled Sigma value: literal text with * and ? wildcards. Matching is
// ASCII case-insensitive unless cased (Unicode letters outside ASCII compare
// exactly); ? stands for one byte. The pattern is lower-cased once here, each value
// byte is folded as it is compared, so matching allocates nothing.
type glob struct {
	segs       []segment // the pieces between stars
	lead, tail bool      // a star before the first / after the last segment
	cased      bool
	kind       globKind
}

type globKind uint8

const (
	gGeneral  globKind = iota
	gEqual             // no wildcard at all
	gPrefix            // lit*
	gSuffix            // *lit
	gContains          // *lit*
	gAny               // * alone
)

type segment struct {
	b []byte
	q []bool // q[i]: b[i] is a ? wildcard; nil when the segment has none
}

func compileGlob(s string, cased bool) *glob {
	g := &glob{cased: cased}
	toks := lexGlob(s)
	cur := segment{}
	hasQ := false
	flush := func() {
		g.segs = append(g.segs, cur)
		cur = segment{}
	}
	for i, t := range toks {
		switch t.wild {
		case '*':
			if i == 0 {
				g.lead = true
			}
			if i == len(toks)-1 {
				g.tail = true
			}
			if len(cur.b) > 0 {
				flush()
			}
		case '?':
			hasQ = true
			if cur.q == nil {
				cur.q = make([]bool, len(cur.b))
			}
			cur.b = append(cur.b, '?')
			cur.q = append(cur.q, true)
		default:
			c := t.c
			if !cased {
				c = lower(c)
			}
			cur.b = append(cur.b, c)
			if cur.q != nil {
				cur.q = append(cur.q, false)
			}
		}
	}
	if len(cur.b) > 0 || len(g.segs) == 0 && !g.lead {
		flush()
	}
	switch {
	case len(g.segs) == 0:
		g.kind = gAny
	case hasQ || len(g.segs) > 1:
		g.kind = gGeneral
	case !g.lead && !g.tail:
		g.kind = gEqual
	case g.lead && g.tail:
		g.kind = gContains
	case g.tail:
		g.kind = gPrefix
	default:
		g.kind = gSuffix
	}
	return g
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func (g *glob) match(v string) bool {
	switch g.kind {
	case gAny:
		return true
	case gEqual:
		return len(v) == len(g.segs[0].b) && g.at(v, 0, &g.segs[0])
	case gPrefix:
		return len(v) >= len(g.segs[0].b) && g.at(v, 0, &g.segs[0])
	case gSuffix:
		s := &g.segs[0]
		return len(v) >= len(s.b) && g.at(v, len(v)-len(s.b), s)
	case gContains:
		return g.index(v, 0, &g.segs[0]) >= 0
	}
	segs := g.segs
	pos := 0
	if !g.lead {
		s := &segs[0]
		if len(v) < len(s.b) || !g.at(v, 0, s) {
			return false
		}
		pos = len(s.b)
		segs = segs[1:]
		if len(segs) == 0 {
			return g.tail || pos == len(v)
		}
	}
	var last *segment
	if !g.tail {
		last = &segs[len(segs)-1]
		segs = segs[:len(segs)-1]
	}
	for i := range segs {
		j := g.index(v, pos, &segs[i])
		if j < 0 {
			return false
		}
		pos = j + len(segs[i].b)
	}
	if last != nil {
		start := len(v) - len(last.b)
		return start >= pos && g.at(v, start, last)
	}
	return true
}

// at reports whether s matches v at offset i (the caller checks the length).
func (g *glob) at(v string, i int, s *segment) bool {
	b := s.b
	v = v[i : i+len(b)]
	if g.cased {
		for j := range b {
			if v[j] != b[j] && (s.q == nil || !s.q[j]) {
				return false
			}
		}
		return true
	}
	for j := range b {
		if lower(v[j]) != b[j] && (s.q == nil || !s.q[j]) {
			return false
		}
	}
	return true
}

// index returns the first offset ≥ from where s matches in v, or -1.
func (g *glob) index(v string, from int, s *segment) int {
	n := len(s.b)
	if n == 0 {
		return from
	}
	first := s.b[0]
	firstWild := s.q != nil && s.q[0]
	for i := from; i+n <= len(v); i++ {
		if !firstWild {
			c := v[i]
			if !g.cased {
				c = lower(c)
			}
			if c != first {
				continue
			}
		}
		if g.at(v, i, s) {
			return i
		}
	}
	return -1
}

// reMatcher runs a regular expression; when the expression needs a literal that is
// cheap to look for (case-sensitively), values without it are rejected first.
type reMatcher struct {
	re   *regexp.Regexp
	need string
}

func newReMatcher(re *regexp.Regexp) reMatcher {
	m := reMatcher{re: re}
	if sr, err := syntax.Parse(re.String(), syntax.Perl); err == nil {
		m.need = requiredLiteral(sr.Simplify())
	}
	return m
}

// requiredLiteral returns the longest case-sensitive literal every match of r
// contains, or "".
func requiredLiteral(r *syntax.Regexp) string {
	switch r.Op {
	case syntax.OpLiteral:
		if r.Flags&syntax.FoldCase == 0 {
			return string(r.Rune)
		}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(r.Sub[0])
	case syntax.OpConcat:
		best := ""
		for _, s := range r.Sub {
			if l := requiredLiteral(s); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

func (m reMatcher) match(s string) bool {
	if m.need != "" && !strings.Contains(s, m.need) {
		return false
	}
	return m.re.MatchString(s)
}

// cidrMatcher matches an IP address inside a network; a value that is not an IP
// (CloudTrail's "AWS Internal") does not match.
type cidrMatcher struct{ p netip.Prefix }

func (m cidrMatcher) match(s string) bool {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return false
	}
	return m.p.Contains(a.Unmap())
}

type numMatcher struct {
	op string
	v  float64
}

func (m numMatcher) match(s string) bool {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return false
	}
	switch m.op {
	case "lt":
		return f < m.v
	case "lte":
		return f <= m.v
	case "gt":
		return f > m.v
	}
	return f >= m.v
}
