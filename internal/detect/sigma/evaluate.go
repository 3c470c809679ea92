package sigma

import "github.com/vigil-sec/vigil/internal/event"

// Evaluator matches events against a RuleSet. It keeps per-event scratch state and is
// not safe for concurrent use: give each worker its own.
type Evaluator struct {
	set *RuleSet
	m   *matcher
}

// NewEvaluator returns an Evaluator of rs.
func (rs *RuleSet) NewEvaluator() *Evaluator {
	return &Evaluator{set: rs, m: newMatcher(rs)}
}

// Match calls fn with every rule of dataset that matches e, in load order. e must not
// change during the call.
func (ev *Evaluator) Match(e *event.Event, dataset string, fn func(*Rule)) {
	ds := ev.set.byDataset[dataset]
	if ds == nil {
		return
	}
	m := ev.m
	m.reset(e)
	if len(m.cand) < len(ds.rules) {
		m.cand = make([]uint32, len(ds.rules))
	}
	if ds.slot >= 0 {
		for _, v := range m.slot(ds.slot).vals {
			m.key = m.key[:0]
			for i := 0; i < len(v); i++ {
				m.key = append(m.key, lower(v[i]))
			}
			for _, i := range ds.byValue[string(m.key)] {
				m.cand[i] = m.gen
			}
		}
	}
	for i, c := range ds.rules {
		if c.indexed && m.cand[i] != m.gen {
			continue
		}
		m.cur = c
		if c.cond.eval(m) {
			fn(c.rule)
		}
	}
	m.cur = nil
	m.ev = nil
}
