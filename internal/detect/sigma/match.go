package sigma

import (
	"encoding/json"
	"strconv"
	"strings"
	"unsafe"

	"github.com/vigil-sec/vigil/internal/event"
)

// search is one search identifier: an OR of alternatives, each an AND of items.
type search struct {
	alts [][]item
}

// item is one `field|modifiers: values` entry, or a keyword list.
type item struct {
	slots    []int // field slots; a value matches when any slot's value does
	matchers []valueMatcher
	all      bool // every matcher must match (|all)
	neq      bool
	null     bool // the only value is null: field missing or null
	nullOK   bool // null is one of several values
	exists   int8 // -1: no exists modifier; 0: exists false; 1: exists true
	refSlots []int
	refMode  string // fieldref: "", "contains", "startswith", "endswith"
	// eqValues are the item's values when it holds only when its one field equals
	// one of them (lower-cased); nil otherwise. The rule index uses them.
	eqValues []string
}

func (s *search) match(m *matcher) bool {
	for _, alt := range s.alts {
		ok := true
		for i := range alt {
			if !alt[i].match(m) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (it *item) match(m *matcher) bool {
	r := it.eval(m)
	if it.neq {
		return !r
	}
	return r
}

func (it *item) eval(m *matcher) bool {
	present, null := false, true
	for _, s := range it.slots {
		st := m.slot(s)
		if st.present {
			present = true
		}
		if !st.null {
			null = false
		}
	}
	if it.exists >= 0 {
		return present == (it.exists == 1)
	}
	if it.null {
		return !present || null
	}
	if !present || null {
		return it.nullOK
	}
	if it.refSlots != nil {
		return it.fieldref(m)
	}
	if it.all {
		for _, vm := range it.matchers {
			if !m.any(it.slots, vm) {
				return false
			}
		}
		return true
	}
	for _, vm := range it.matchers {
		if m.any(it.slots, vm) {
			return true
		}
	}
	return false
}

func (it *item) fieldref(m *matcher) bool {
	for _, s := range it.slots {
		for _, v := range m.slot(s).vals {
			for _, rs := range it.refSlots {
				for _, ref := range m.slot(rs).vals {
					if refMatch(it.refMode, v, ref) {
						return true
					}
				}
			}
		}
	}
	return false
}

// refMatch compares a field value with another field's value, case-insensitively.
func refMatch(mode, v, ref string) bool {
	switch mode {
	case "startswith":
		return len(v) >= len(ref) && strings.EqualFold(v[:len(ref)], ref)
	case "endswith":
		return len(v) >= len(ref) && strings.EqualFold(v[len(v)-len(ref):], ref)
	case "contains":
		for i := 0; i+len(ref) <= len(v); i++ {
			if strings.EqualFold(v[i:i+len(ref)], ref) {
				return true
			}
		}
		return false
	}
	return strings.EqualFold(v, ref)
}

// matcher evaluates compiled rules against one event at a time. Field values are
// resolved once per event and slot, on first use. It belongs to one processor
// instance and is not safe for concurrent use.
type matcher struct {
	set   *RuleSet
	ev    *event.Event
	gen   uint32
	slots []slotState
	cur   *compiled
	arena []byte
	cand  []uint32 // cand[i] == gen: rule i of the dataset is a candidate
	scans []scanState
	key   []byte
}

type slotState struct {
	gen     uint32
	present bool
	null    bool
	vals    []string
}

func newMatcher(set *RuleSet) *matcher {
	m := &matcher{set: set, slots: make([]slotState, len(set.paths)), scans: make([]scanState, len(set.groups))}
	for i, g := range set.groups {
		m.scans[i].hits = make([]uint64, (g.members+63)/64)
	}
	return m
}

// reset starts a new event.
func (m *matcher) reset(e *event.Event) {
	m.ev = e
	m.gen++
	if m.gen == 0 { // wrapped: forget every cached slot and candidate
		for i := range m.slots {
			m.slots[i].gen = 0
		}
		clear(m.cand)
		for i := range m.scans {
			m.scans[i].gen = 0
		}
		m.gen = 1
	}
	m.arena = m.arena[:0]
}

func (m *matcher) search(i int) bool { return m.cur.searches[i].match(m) }

func (m *matcher) any(slots []int, vm valueMatcher) bool {
	if mu, ok := vm.(*multi); ok && mu.group >= 0 {
		if m.groupHit(mu) {
			return true
		}
		if len(mu.linear) == 0 {
			return false
		}
		for _, s := range slots {
			for _, v := range m.slot(s).vals {
				if mu.matchLinear(v) {
					return true
				}
			}
		}
		return false
	}
	for _, s := range slots {
		for _, v := range m.slot(s).vals {
			if vm.match(v) {
				return true
			}
		}
	}
	return false
}

// slot returns the values of field slot i in the current event.
func (m *matcher) slot(i int) *slotState {
	st := &m.slots[i]
	if st.gen == m.gen {
		return st
	}
	st.gen = m.gen
	st.present, st.null = false, false
	st.vals = st.vals[:0]
	path := m.set.paths[i]
	fields := m.ev.Fields
	exact, prefix := -1, -1
	for j := len(fields) - 1; j >= 0; j-- {
		k := fields[j].Key
		if len(k) == len(path) {
			if k == path {
				exact = j
				break
			}
		} else if len(k) < len(path) && path[len(k)] == '.' && path[:len(k)] == k &&
			fields[j].Value.Kind() == event.KindRaw && (prefix < 0 || len(k) > len(fields[prefix].Key)) {
			prefix = j
		}
	}
	switch {
	case exact >= 0:
		st.present = true
		m.values(st, fields[exact].Value)
	case prefix >= 0:
		raw, _ := fields[prefix].Value.RawJSON()
		var v any
		if json.Unmarshal(raw, &v) == nil {
			rest := path[len(fields[prefix].Key)+1:]
			m.walk(st, v, splitDots(rest))
		}
		if st.present && len(st.vals) == 0 {
			st.null = true
		}
	default:
		st.present = m.ev.Has(path)
	}
	return st
}

func splitDots(s string) []string {
	var out []string
	for {
		i := 0
		for i < len(s) && s[i] != '.' {
			i++
		}
		out = append(out, s[:i])
		if i == len(s) {
			return out
		}
		s = s[i+1:]
	}
}

// view returns b as a string without copying. The string borrows the event's (or the
// arena's) bytes: it is only used while the event is being matched, and neither is
// changed during that time.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (m *matcher) text(f func([]byte) []byte) string {
	start := len(m.arena)
	m.arena = f(m.arena)
	return view(m.arena[start:len(m.arena):len(m.arena)])
}

// values appends the text forms of v: strings as they are, numbers in decimal,
// booleans as true/false, arrays element by element, objects as compact JSON.
func (m *matcher) values(st *slotState, v event.Value) {
	switch v.Kind() {
	case event.KindNull:
		st.null = true
	case event.KindString:
		st.vals = append(st.vals, v.Str())
	case event.KindBytes:
		b, _ := v.AsBytes()
		st.vals = append(st.vals, view(b))
	case event.KindStrings:
		ss, _ := v.AsStrings()
		st.vals = append(st.vals, ss...)
	case event.KindRaw:
		raw, _ := v.RawJSON()
		if len(raw) > 0 && raw[0] == '{' {
			st.vals = append(st.vals, view(raw))
			return
		}
		var x any
		if json.Unmarshal(raw, &x) == nil {
			m.walk(st, x, nil)
		}
		if len(st.vals) == 0 {
			st.null = true
		}
	case event.KindTime:
		t, _ := v.AsTime()
		st.vals = append(st.vals, m.text(func(b []byte) []byte { return event.AppendTimestamp(b, t) }))
	default: // numbers and booleans
		st.vals = append(st.vals, m.text(v.AppendJSON))
	}
}

// walk collects the values at path inside a decoded JSON value; arrays fan out.
func (m *matcher) walk(st *slotState, v any, path []string) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			m.walk(st, e, path)
		}
		if len(x) == 0 && len(path) == 0 {
			st.present = true
		}
		return
	case map[string]any:
		if len(path) > 0 {
			if c, ok := x[path[0]]; ok {
				m.walk(st, c, path[1:])
			}
			return
		}
		st.present = true
		b, _ := json.Marshal(x)
		st.vals = append(st.vals, string(b))
		return
	}
	if len(path) > 0 {
		return
	}
	st.present = true
	switch x := v.(type) {
	case nil:
	case string:
		st.vals = append(st.vals, x)
	case bool:
		st.vals = append(st.vals, strconv.FormatBool(x))
	case float64:
		st.vals = append(st.vals, strconv.FormatFloat(x, 'f', -1, 64))
	}
}
