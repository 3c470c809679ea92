package threshold

import (
	"cmp"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// maxAlertIDs bounds the contributing event ids an alert lists.
const maxAlertIDs = 10

// slideSteps is how many panes a sliding window is made of: it moves in steps of
// window/slideSteps and covers between window and window + window/slideSteps.
const slideSteps = 10

// rule is a compiled threshold rule.
type rule struct {
	name     string
	cfg      *Config
	aggs     []aggregate
	nums     []string // fields read as numbers
	sketched []bool   // per numeric field: a quantile reads it
	strs     []string // fields whose distinct values are counted
	cond     *condition
	sliding  bool
	window   int64 // ns
	pane     int64 // ns
	lateness int64
	suppress int64
	severity int64
}

func newRule(name string, c *Config) (*rule, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	aggs, err := c.aggregates()
	if err != nil {
		return nil, err
	}
	r := &rule{name: name, cfg: c, sliding: c.WindowType != "tumbling", window: int64(c.Window),
		lateness: int64(c.Lateness), suppress: int64(c.Suppress), severity: Levels[c.Level]}
	if r.suppress == 0 {
		r.suppress = r.window
	}
	r.pane = r.window
	if r.sliding {
		r.pane = max(r.window/slideSteps, 1)
	}
	for i := range aggs {
		a := &aggs[i]
		switch a.kind {
		case aggCount:
		case aggDistinct:
			a.slot = slotOf(&r.strs, a.field)
		default:
			a.slot = slotOf(&r.nums, a.field)
			for len(r.sketched) < len(r.nums) {
				r.sketched = append(r.sketched, false)
			}
			if a.kind == aggQuantile {
				r.sketched[a.slot] = true
			}
		}
	}
	r.aggs = aggs
	if r.cond, err = compileCondition(c.Condition, aggs); err != nil {
		return nil, err
	}
	return r, nil
}

func slotOf(list *[]string, field string) int {
	if i := slices.Index(*list, field); i >= 0 {
		return i
	}
	*list = append(*list, field)
	return len(*list) - 1
}

// condition is a compiled condition with its reusable environment; not safe for
// concurrent use.
type condition struct {
	prog *vm.Program
	env  map[string]any
	vm   vm.VM
}

// holds evaluates the condition with each aggregate's value; an aggregate without
// values (an average of nothing) is NaN, which no comparison holds for.
func (c *condition) holds(aggs []aggregate, vals []float64) bool {
	for i, a := range aggs {
		c.env[a.name] = vals[i]
	}
	out, err := c.vm.Run(c.prog, c.env)
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}

// partial is the aggregate of the samples of one pane (or, for a sliding window,
// the running total of its panes). Exported fields are its snapshot form.
type partial struct {
	Count int64              `json:"c"`
	N     []int64            `json:"n,omitempty"` // per numeric field: samples with a number
	Sum   []float64          `json:"s,omitempty"`
	Min   []float64          `json:"lo,omitempty"`
	Max   []float64          `json:"hi,omitempty"`
	Sk    []*sketch          `json:"q,omitempty"` // per numeric field; nil unless a quantile reads it
	D     []map[string]int64 `json:"d,omitempty"` // per distinct field: value → samples
	IDs   []string           `json:"ids,omitempty"`
	// Seen is Count when an idle evaluation last looked at the pane.
	Seen int64 `json:"seen,omitempty"`
}

func (r *rule) newPartial() *partial {
	p := &partial{N: make([]int64, len(r.nums)), Sum: make([]float64, len(r.nums)), Min: make([]float64, len(r.nums)),
		Max: make([]float64, len(r.nums)), Sk: make([]*sketch, len(r.nums)), D: make([]map[string]int64, len(r.strs))}
	for i, q := range r.sketched {
		if q {
			p.Sk[i] = &sketch{}
		}
	}
	for i := range p.D {
		p.D[i] = map[string]int64{}
	}
	return p
}

// addNums adds a sample's count, numbers and id to p.
func (p *partial) addNums(s *sample) {
	p.Count++
	for i, v := range s.nums {
		if math.IsNaN(v) {
			continue
		}
		if p.N[i] == 0 || v < p.Min[i] {
			p.Min[i] = v
		}
		if p.N[i] == 0 || v > p.Max[i] {
			p.Max[i] = v
		}
		p.N[i]++
		p.Sum[i] += v
		if p.Sk[i] != nil {
			p.Sk[i].add(v)
		}
	}
	if len(p.IDs) < maxAlertIDs && s.id != "" {
		p.IDs = append(p.IDs, s.id)
	}
}

// subtract removes pane o from the running total p (min, max and ids are read
// from the panes, not the total).
func (p *partial) subtract(o *partial) {
	p.Count -= o.Count
	for i := range p.N {
		p.N[i] -= o.N[i]
		p.Sum[i] -= o.Sum[i]
		if p.Sk[i] != nil {
			p.Sk[i].merge(o.Sk[i], -1)
		}
	}
	for i, d := range o.D {
		for v, c := range d {
			if n := p.D[i][v] - c; n > 0 {
				p.D[i][v] = n
			} else {
				delete(p.D[i], v)
			}
		}
	}
}

// group is the state of one group key.
type group struct {
	Vals  []string           `json:"k"`
	Panes map[int64]*partial `json:"p,omitempty"` // by pane index (time / pane)
	Total *partial           `json:"t,omitempty"` // sliding: the sum of Panes
	// Newest is the newest event time seen in the group (sliding).
	Newest    int64 `json:"nw,omitempty"`
	LastAlert int64 `json:"la,omitempty"` // end of the last alert's window
	Alerted   bool  `json:"a,omitempty"`

	key  string
	elem *list.Element
}

// Alert is a condition that held for a group and window.
type Alert struct {
	Rule   string
	Group  []string
	Values []float64 // per aggregate, in the rule's order (sorted by name)
	// Start and End are the window's bounds, Unix nanoseconds.
	Start, End int64
	IDs        []string
}

// ID is the alert's deterministic event.id: the same rule, group and window start
// give the same id, so a re-processing overwrites instead of duplicating.
func (a *Alert) ID() string {
	h := sha256.New()
	h.Write([]byte(a.Rule))
	for _, g := range a.Group {
		h.Write([]byte{0})
		h.Write([]byte(g))
	}
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(a.Start, 10)))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// state is one rule's windows. It is owned by one goroutine (the aggregator's).
type state struct {
	r      *rule
	groups map[string]*group
	lru    *list.List // of *group, most recently updated at the back

	maxTime   int64 // newest event time seen
	hasTime   bool
	closed    int64 // the watermark windows were last closed at
	hasClosed bool

	late, evicted uint64
	scratch       []float64
}

func newState(r *rule) *state {
	return &state{r: r, groups: map[string]*group{}, lru: list.New()}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// watermark is the event time below which windows are closed: the newest event
// time seen minus the lateness allowance (or the idle close's, if later).
func (st *state) watermark() (int64, bool) {
	if !st.hasTime {
		return st.closed, st.hasClosed
	}
	wm := st.maxTime - st.r.lateness
	if st.hasClosed && st.closed > wm {
		wm = st.closed
	}
	return wm, true
}

// add takes one sample and returns the alerts it raised (appended to out).
func (st *state) add(s *sample, out []Alert) []Alert {
	r := st.r
	idx := floorDiv(s.t, r.pane)
	if wm, ok := st.watermark(); ok {
		if r.sliding && s.t < wm || !r.sliding && (idx+1)*r.pane <= wm {
			st.late++
			return out
		}
	}
	key := strings.Join(s.group, "\x00")
	g := st.groups[key]
	if g == nil {
		if len(st.groups) >= r.cfg.MaxGroups {
			oldest := st.lru.Front().Value.(*group)
			st.remove(oldest)
			st.evicted++
		}
		g = &group{Vals: slices.Clone(s.group), Panes: map[int64]*partial{}, key: key}
		if r.sliding {
			g.Total = r.newPartial()
			g.Newest = s.t
		}
		st.groups[key] = g
		g.elem = st.lru.PushBack(g)
	} else {
		st.lru.MoveToBack(g.elem)
	}
	if r.sliding {
		if idx < floorDiv(g.Newest-r.window, r.pane) {
			st.late++ // older than this group's window
			return out
		}
	}
	p := g.Panes[idx]
	if p == nil {
		p = r.newPartial()
		g.Panes[idx] = p
	}
	p.addNums(s)
	for i, v := range s.strs {
		if !s.has[i] {
			continue
		}
		d := p.D[i]
		if r.sliding {
			d = g.Total.D[i]
		}
		if _, seen := d[v]; !seen && len(d) >= r.cfg.MaxDistinct {
			continue // saturated
		}
		p.D[i][v]++
		if r.sliding {
			g.Total.D[i][v]++
		}
	}
	if r.sliding {
		g.Total.Count++
		for i, v := range s.nums {
			if !math.IsNaN(v) {
				g.Total.N[i]++
				g.Total.Sum[i] += v
				if g.Total.Sk[i] != nil {
					g.Total.Sk[i].add(v)
				}
			}
		}
		if s.t > g.Newest {
			g.Newest = s.t
			first := floorDiv(g.Newest-r.window, r.pane)
			for i, old := range g.Panes {
				if i < first {
					g.Total.subtract(old)
					delete(g.Panes, i)
				}
			}
		}
		out = st.evaluate(g, g.Total, floorDiv(g.Newest-r.window, r.pane)*r.pane, g.Newest, out)
	}
	if !st.hasTime || s.t > st.maxTime {
		st.maxTime, st.hasTime = s.t, true
	}
	if wm, ok := st.watermark(); ok {
		out = st.advance(wm, out)
	}
	return out
}

// evaluate checks the condition over p (with min, max and ids from g's panes for
// a sliding window) and appends an alert unless the group is suppressed.
func (st *state) evaluate(g *group, p *partial, start, end int64, out []Alert) []Alert {
	r := st.r
	if g.Alerted && end < g.LastAlert+r.suppress {
		return out
	}
	vals := st.scratch[:0]
	for _, a := range r.aggs {
		vals = append(vals, st.value(a, g, p))
	}
	st.scratch = vals
	if !r.cond.holds(r.aggs, vals) {
		return out
	}
	g.Alerted, g.LastAlert = true, end
	al := Alert{Rule: r.name, Group: g.Vals, Values: slices.Clone(vals), Start: start, End: end}
	if r.sliding {
		idx := slices.Sorted(mapKeys(g.Panes))
		for _, i := range idx {
			for _, id := range g.Panes[i].IDs {
				if len(al.IDs) < maxAlertIDs {
					al.IDs = append(al.IDs, id)
				}
			}
		}
	} else {
		al.IDs = slices.Clone(p.IDs)
	}
	return append(out, al)
}

func mapKeys(m map[int64]*partial) func(func(int64) bool) {
	return func(yield func(int64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (st *state) value(a aggregate, g *group, p *partial) float64 {
	switch a.kind {
	case aggCount:
		return float64(p.Count)
	case aggDistinct:
		return float64(len(p.D[a.slot]))
	case aggSum:
		return p.Sum[a.slot]
	case aggAvg:
		if p.N[a.slot] == 0 {
			return math.NaN()
		}
		return p.Sum[a.slot] / float64(p.N[a.slot])
	case aggMin, aggMax:
		parts := []*partial{p}
		if st.r.sliding {
			parts = parts[:0]
			for _, pp := range g.Panes {
				parts = append(parts, pp)
			}
		}
		v, any := 0.0, false
		for _, pp := range parts {
			if pp.N[a.slot] == 0 {
				continue
			}
			x := pp.Min[a.slot]
			if a.kind == aggMax {
				x = pp.Max[a.slot]
			}
			if !any || (a.kind == aggMin && x < v) || (a.kind == aggMax && x > v) {
				v, any = x, true
			}
		}
		if !any {
			return math.NaN()
		}
		return v
	case aggQuantile:
		return p.Sk[a.slot].quantile(a.q)
	}
	return math.NaN()
}

// advance closes the windows that end at or before the watermark wm: a tumbling
// window is evaluated, a sliding group whose window is wholly past is forgotten.
// Groups are scanned only when wm crosses a pane boundary.
func (st *state) advance(wm int64, out []Alert) []Alert {
	r := st.r
	if st.hasClosed && wm <= st.closed {
		return out
	}
	crossed := !st.hasClosed || floorDiv(wm, r.pane) != floorDiv(st.closed, r.pane)
	st.closed, st.hasClosed = wm, true
	if !crossed {
		return out
	}
	var closing []*group
	for _, g := range st.groups {
		closing = append(closing, g)
	}
	// Deterministic order: the same samples give the same alerts in the same order.
	slices.SortFunc(closing, func(a, b *group) int { return strings.Compare(a.key, b.key) })
	for _, g := range closing {
		if r.sliding {
			if g.Newest+r.window < wm && (!g.Alerted || g.LastAlert+r.suppress <= wm) {
				st.remove(g)
			}
			continue
		}
		var ends []int64
		for i := range g.Panes {
			if (i+1)*r.pane <= wm {
				ends = append(ends, i)
			}
		}
		slices.Sort(ends)
		for _, i := range ends {
			out = st.evaluate(g, g.Panes[i], i*r.pane, (i+1)*r.pane, out)
			delete(g.Panes, i)
		}
		if len(g.Panes) == 0 && (!g.Alerted || g.LastAlert+r.suppress <= wm) {
			st.remove(g)
		}
	}
	slices.SortStableFunc(out, func(a, b Alert) int { return cmp.Compare(a.End, b.End) })
	return out
}

// idle evaluates tumbling windows early by the wall clock when no sample has come
// for a while, so the last window of a quiet stream raises its alert: each window
// that ended before now − lateness and changed since it was last looked at. It
// closes nothing: a source that delivers late (CloudTrail, S3 batches) still counts
// in the window until the event-time watermark closes it; the window is then
// evaluated again, and an alert already raised for it is suppressed.
func (st *state) idle(now time.Time, out []Alert) []Alert {
	r := st.r
	if r.sliding {
		return out // evaluated on each event already
	}
	wm := now.UnixNano() - r.lateness
	if st.hasClosed && wm <= st.closed {
		return out
	}
	gs := make([]*group, 0, len(st.groups))
	for _, g := range st.groups {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *group) int { return strings.Compare(a.key, b.key) })
	for _, g := range gs {
		for _, i := range slices.Sorted(mapKeys(g.Panes)) {
			p := g.Panes[i]
			if (i+1)*r.pane <= wm && p.Count != p.Seen {
				p.Seen = p.Count
				out = st.evaluate(g, p, i*r.pane, (i+1)*r.pane, out)
			}
		}
	}
	return out
}

func (st *state) remove(g *group) {
	st.lru.Remove(g.elem)
	delete(st.groups, g.key)
}

// snapshot is a rule's state as saved: the windows and the aggregation stream
// sequence they include.
type snapshot struct {
	Fingerprint string   `json:"fingerprint"`
	Seq         uint64   `json:"seq"`
	MaxTime     int64    `json:"max_time"`
	HasTime     bool     `json:"has_time"`
	Closed      int64    `json:"closed"`
	HasClosed   bool     `json:"has_closed"`
	Late        uint64   `json:"late"`
	Evicted     uint64   `json:"evicted"`
	Groups      []*group `json:"groups"` // least recently updated first
}

func (st *state) snapshot(seq uint64) *snapshot {
	s := &snapshot{Fingerprint: st.r.cfg.fingerprint(), Seq: seq, MaxTime: st.maxTime, HasTime: st.hasTime,
		Closed: st.closed, HasClosed: st.hasClosed, Late: st.late, Evicted: st.evicted}
	for e := st.lru.Front(); e != nil; e = e.Next() {
		s.Groups = append(s.Groups, e.Value.(*group))
	}
	return s
}

// restore replaces the state with s's; false when s was taken under another rule
// definition (then the state starts empty).
func (st *state) restore(s *snapshot) bool {
	if s.Fingerprint != st.r.cfg.fingerprint() {
		return false
	}
	st.groups, st.lru = map[string]*group{}, list.New()
	st.maxTime, st.hasTime, st.closed, st.hasClosed = s.MaxTime, s.HasTime, s.Closed, s.HasClosed
	st.late, st.evicted = s.Late, s.Evicted
	for _, g := range s.Groups {
		g.key = strings.Join(g.Vals, "\x00")
		if g.Panes == nil {
			g.Panes = map[int64]*partial{}
		}
		for _, p := range g.Panes {
			st.r.fix(p)
		}
		if st.r.sliding {
			if g.Total == nil {
				g.Total = st.r.newPartial()
			}
			st.r.fix(g.Total)
		}
		st.groups[g.key] = g
		g.elem = st.lru.PushBack(g)
	}
	return true
}

// fix gives a decoded partial the shape newPartial gives.
func (r *rule) fix(p *partial) {
	n := r.newPartial()
	if len(p.N) != len(r.nums) {
		p.N, p.Sum, p.Min, p.Max = n.N, n.Sum, n.Min, n.Max
	}
	if len(p.Sk) != len(r.nums) {
		p.Sk = n.Sk
	}
	for i := range p.Sk {
		if r.sketched[i] && p.Sk[i] == nil {
			p.Sk[i] = &sketch{}
		}
	}
	if len(p.D) != len(r.strs) {
		p.D = n.D
	}
	for i := range p.D {
		if p.D[i] == nil {
			p.D[i] = map[string]int64{}
		}
	}
}
