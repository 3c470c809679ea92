package sigma

import (
	"fmt"
	"sort"
)

// Shared scans: many web rules each search a long list of substrings in the same
// field (the log line, the user agent). Scanning the field once per rule makes the
// cost grow with the number of rules, so the long lists of one dataset that search
// the same fields are merged into one scan group. The first rule that needs the
// group scans every value of its fields once and records which lists (owners)
// matched; every other rule then reads its bit.

type scanGroup struct {
	slots    []int
	members  int
	anchored map[uint16][]ownedGlob
	bits     [16]uint64
	off      *[1025]uint32
	ent      []ownedPair
}

type ownedGlob struct {
	owner int
	g     *glob
}

type ownedPair struct {
	key   uint16
	owner int32
	g     *glob
}

// scanState is one group's result for the current event.
type scanState struct {
	gen  uint32
	hits []uint64
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// buildScanGroups puts the multi matchers of one dataset's rules into groups by the
// fields they search, appending the groups to groups.
func buildScanGroups(rules []*compiled, groups []*scanGroup) []*scanGroup {
	type build struct {
		g     *scanGroup
		slots [1024][]ownedPair
	}
	byKey := map[string]*build{}
	var order []string
	for _, c := range rules {
		for si := range c.searches {
			for ai := range c.searches[si].alts {
				for ii := range c.searches[si].alts[ai] {
					it := &c.searches[si].alts[ai][ii]
					for _, vm := range it.matchers {
						mu, ok := vm.(*multi)
						if !ok || it.all {
							continue
						}
						key := fmt.Sprint(it.slots)
						b := byKey[key]
						if b == nil {
							b = &build{g: &scanGroup{slots: it.slots, anchored: map[uint16][]ownedGlob{}}}
							byKey[key] = b
							order = append(order, key)
						}
						mu.group, mu.owner = -2, b.g.members // group set below
						b.g.members++
						for k, gs := range mu.anchored {
							for _, g := range gs {
								b.g.anchored[k] = append(b.g.anchored[k], ownedGlob{owner: mu.owner, g: g})
							}
						}
						if mu.floatOff != nil {
							for h := 0; h < 1024; h++ {
								for _, e := range mu.floatEnt[mu.floatOff[h]:mu.floatOff[h+1]] {
									b.slots[h] = append(b.slots[h], ownedPair{key: e.key, owner: int32(mu.owner), g: e.g})
								}
							}
						}
					}
				}
			}
		}
	}
	for _, key := range order {
		b := byKey[key]
		g := b.g
		g.off = new([1025]uint32)
		for h := range b.slots {
			g.off[h] = uint32(len(g.ent))
			g.ent = append(g.ent, b.slots[h]...)
			if len(b.slots[h]) > 0 {
				g.bits[h>>6] |= 1 << (h & 63)
			}
		}
		g.off[1024] = uint32(len(g.ent))
		id := len(groups)
		groups = append(groups, g)
		// Point the members at their group.
		for _, c := range rules {
			for si := range c.searches {
				for ai := range c.searches[si].alts {
					for ii := range c.searches[si].alts[ai] {
						it := &c.searches[si].alts[ai][ii]
						if fmt.Sprint(it.slots) != key {
							continue
						}
						for _, vm := range it.matchers {
							if mu, ok := vm.(*multi); ok && mu.group == -2 {
								mu.group = id
							}
						}
					}
				}
			}
		}
	}
	return groups
}

// groupHit reports whether mu's patterns match the current event, scanning its group
// once per event.
func (m *matcher) groupHit(mu *multi) bool {
	st := &m.scans[mu.group]
	if st.gen != m.gen {
		st.gen = m.gen
		clear(st.hits)
		g := m.set.groups[mu.group]
		for _, s := range g.slots {
			for _, v := range m.slot(s).vals {
				g.scan(v, st.hits)
			}
		}
	}
	return st.hits[mu.owner>>6]&(1<<(mu.owner&63)) != 0
}

func (g *scanGroup) scan(v string, hits []uint64) {
	if len(v) < 2 {
		return
	}
	for _, e := range g.anchored[pair(v[0], v[1])] {
		if hits[e.owner>>6]&(1<<(e.owner&63)) == 0 && e.g.match(v) {
			hits[e.owner>>6] |= 1 << (e.owner & 63)
		}
	}
	prev := uint16(lowerTable[v[0]])
	for i := 0; i+1 < len(v); i++ {
		cur := uint16(lowerTable[v[i+1]])
		k := prev<<8 | cur
		prev = cur
		h := pairSlot(k)
		if g.bits[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, e := range g.ent[g.off[h]:g.off[h+1]] {
			o := e.owner
			if e.key == k && hits[o>>6]&(1<<(o&63)) == 0 && i+len(e.g.segs[0].b) <= len(v) && e.g.at(v, i, &e.g.segs[0]) {
				hits[o>>6] |= 1 << (o & 63)
			}
		}
	}
}
