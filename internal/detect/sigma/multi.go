package sigma

// multi matches a value against many patterns at once: the OR of an item's values,
// as in the long user-agent and URL lists of the web rules. Patterns are bucketed
// by their first two (lower-cased) bytes: anchored ones (equal, startswith) are
// looked up once with the value's first pair, floating ones (contains) with every
// pair of the value that a 64 Ki-bit filter lets through. The rest are tried one by
// one. Built once per rule set; read-only while matching.
type multi struct {
	anchored map[uint16][]*glob
	floating map[uint16][]*glob
	filter   *[1024]uint64
	linear   []valueMatcher
}

// minMulti is the number of values from which an item uses multi.
const minMulti = 4

func pair(a, b byte) uint16 { return uint16(lower(a))<<8 | uint16(lower(b)) }

func newMulti(ms []valueMatcher) valueMatcher {
	m := &multi{anchored: map[uint16][]*glob{}, floating: map[uint16][]*glob{}, filter: new([1024]uint64)}
	for _, vm := range ms {
		g, ok := vm.(*glob)
		if !ok || g.cased || len(g.segs) == 0 || len(g.segs[0].b) < 2 || g.segs[0].q != nil {
			m.linear = append(m.linear, vm)
			continue
		}
		b := g.segs[0].b
		k := uint16(b[0])<<8 | uint16(b[1])
		switch g.kind {
		case gEqual, gPrefix:
			m.anchored[k] = append(m.anchored[k], g)
		case gContains:
			m.floating[k] = append(m.floating[k], g)
			m.filter[k>>6] |= 1 << (k & 63)
		default:
			if !g.lead {
				m.anchored[k] = append(m.anchored[k], g)
			} else {
				m.linear = append(m.linear, vm)
			}
		}
	}
	return m
}

func (m *multi) match(v string) bool {
	if len(v) >= 2 {
		for _, g := range m.anchored[pair(v[0], v[1])] {
			if g.match(v) {
				return true
			}
		}
		if len(m.floating) > 0 {
			for i := 0; i+1 < len(v); i++ {
				k := pair(v[i], v[i+1])
				if m.filter[k>>6]&(1<<(k&63)) == 0 {
					continue
				}
				for _, g := range m.floating[k] {
					if i+len(g.segs[0].b) <= len(v) && g.at(v, i, &g.segs[0]) {
						return true
					}
				}
			}
		}
	}
	for _, vm := range m.linear {
		if vm.match(v) {
			return true
		}
	}
	return false
}
