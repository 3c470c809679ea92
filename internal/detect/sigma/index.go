package sigma

// The rule index: most rules hold only when one field (for CloudTrail, eventName →
// event.action) equals one of a few values. For each dataset the field that
// constrains the most rules is chosen; an event is then evaluated only against the
// rules listed under its value of that field, plus the rules the field does not
// constrain. The constraint is derived from the condition, so the index never hides
// a match: it only skips rules that cannot hold.

// dsRules are the compiled rules of one dataset.
type dsRules struct {
	rules   []*compiled
	slot    int              // the indexed field slot, -1 for none
	byValue map[string][]int // lower-cased value → indexes into rules
}

func equalValues(it *item) []string {
	if it.neq || it.all || it.exists >= 0 || it.null || it.nullOK || it.refSlots != nil || len(it.slots) != 1 || len(it.matchers) == 0 {
		return nil
	}
	out := make([]string, 0, len(it.matchers))
	for _, vm := range it.matchers {
		g, ok := vm.(*glob)
		if !ok || g.kind != gEqual {
			return nil
		}
		b := make([]byte, len(g.segs[0].b))
		for i, c := range g.segs[0].b {
			b[i] = lower(c)
		}
		out = append(out, string(b))
	}
	return out
}

// constraint is, per slot, the values one of which the slot must hold.
type constraint map[int][]string

func (c *compiled) constraint(x expr) constraint {
	switch x := x.(type) {
	case refExpr:
		return searchConstraint(&c.searches[x])
	case andExpr:
		out := constraint{}
		for _, y := range x {
			for k, v := range c.constraint(y) {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
		return out
	case orExpr:
		parts := make([]constraint, len(x))
		for i, y := range x {
			parts[i] = c.constraint(y)
		}
		return union(parts)
	}
	return nil
}

func searchConstraint(s *search) constraint {
	parts := make([]constraint, len(s.alts))
	for i, alt := range s.alts {
		c := constraint{}
		for _, it := range alt {
			if it.eqValues != nil {
				if _, ok := c[it.slots[0]]; !ok {
					c[it.slots[0]] = it.eqValues
				}
			}
		}
		parts[i] = c
	}
	return union(parts)
}

// union is the constraint of an OR: slots every part constrains, with all their values.
func union(parts []constraint) constraint {
	if len(parts) == 0 {
		return nil
	}
	out := constraint{}
	for k := range parts[0] {
		var vals []string
		for _, p := range parts {
			v, ok := p[k]
			if !ok {
				vals = nil
				break
			}
			vals = append(vals, v...)
		}
		if vals != nil {
			out[k] = vals
		}
	}
	return out
}

func buildIndex(rules []*compiled) *dsRules {
	ds := &dsRules{rules: rules, slot: -1}
	cons := make([]constraint, len(rules))
	count := map[int]int{}
	for i, c := range rules {
		cons[i] = c.constraint(c.cond)
		for k := range cons[i] {
			count[k]++
		}
	}
	best := 0
	for k, n := range count {
		if n > best || n == best && k < ds.slot {
			ds.slot, best = k, n
		}
	}
	if best < 2 {
		ds.slot = -1
		return ds
	}
	ds.byValue = map[string][]int{}
	for i, c := range rules {
		vals, ok := cons[i][ds.slot]
		c.indexed = ok
		for _, v := range vals {
			if l := ds.byValue[v]; len(l) == 0 || l[len(l)-1] != i {
				ds.byValue[v] = append(l, i)
			}
		}
	}
	return ds
}
