package sigma

// multi matches a value against many patterns at once: the OR of an item's values,
// as in the long user-agent and URL lists of the web rules. Patterns are bucketed
// by their first two (lower-cased) bytes: anchored ones (equal, startswith) are
// looked up once with the value's first pair, floating ones (contains) with every
// pair of the value, through a 1024-slot hash table (a map lookup per position
// costs too much on a long log line). The rest are tried one by one. Built once per
// rule set; read-only while matching.
type multi struct {
	// group and owner place the multi in its dataset's shared scan (see shared.go);
	// group is -1 when it scans on its own.
	group, owner int

	anchored map[uint16][]*glob
	// floating patterns by the hash slot of their first pair: a 1024-bit presence
	// map small enough to stay in L1, then offsets into one sorted entry list.
	floatBits [16]uint64
	floatOff  *[1025]uint32
	floatEnt  []pairGlob
	linear    []valueMatcher
}

type pairGlob struct {
	key uint16
	g   *glob
}

func pairSlot(k uint16) uint32 { return (uint32(k) * 2654435761) >> 22 }

// lowerTable folds ASCII upper case.
var lowerTable = func() (t [256]byte) {
	for i := range t {
		t[i] = lower(byte(i))
	}
	return t
}()

// minMulti is the number of values from which an item uses multi.
const minMulti = 4

func pair(a, b byte) uint16 { return uint16(lower(a))<<8 | uint16(lower(b)) }

func newMulti(ms []valueMatcher) valueMatcher {
	m := &multi{group: -1, anchored: map[uint16][]*glob{}}
	var slots [1024][]pairGlob
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
			h := pairSlot(k)
			slots[h] = append(slots[h], pairGlob{key: k, g: g})
		default:
			if !g.lead {
				m.anchored[k] = append(m.anchored[k], g)
			} else {
				m.linear = append(m.linear, vm)
			}
		}
	}
	if n := countEntries(&slots); n > 0 {
		m.floatOff = new([1025]uint32)
		m.floatEnt = make([]pairGlob, 0, n)
		for h := range slots {
			m.floatOff[h] = uint32(len(m.floatEnt))
			m.floatEnt = append(m.floatEnt, slots[h]...)
			if len(slots[h]) > 0 {
				m.floatBits[h>>6] |= 1 << (h & 63)
			}
		}
		m.floatOff[1024] = uint32(len(m.floatEnt))
	}
	return m
}

func countEntries(slots *[1024][]pairGlob) int {
	n := 0
	for _, s := range slots {
		n += len(s)
	}
	return n
}

func (m *multi) match(v string) bool {
	if len(v) >= 2 {
		for _, g := range m.anchored[pair(v[0], v[1])] {
			if g.match(v) {
				return true
			}
		}
		if m.floatOff != nil {
			prev := uint16(lowerTable[v[0]])
			for i := 0; i+1 < len(v); i++ {
				cur := uint16(lowerTable[v[i+1]])
				k := prev<<8 | cur
				prev = cur
				h := pairSlot(k)
				if m.floatBits[h>>6]&(1<<(h&63)) == 0 {
					continue
				}
				for _, e := range m.floatEnt[m.floatOff[h]:m.floatOff[h+1]] {
					if e.key == k && i+len(e.g.segs[0].b) <= len(v) && e.g.at(v, i, &e.g.segs[0]) {
						return true
					}
				}
			}
		}
	}
	return m.matchLinear(v)
}

func (m *multi) matchLinear(v string) bool {
	for _, vm := range m.linear {
		if vm.match(v) {
			return true
		}
	}
	return false
}
