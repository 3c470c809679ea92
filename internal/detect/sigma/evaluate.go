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
	rules := ev.set.byDataset[dataset]
	if len(rules) == 0 {
		return
	}
	m := ev.m
	m.reset(e)
	for _, c := range rules {
		m.cur = c
		if c.cond.eval(m) {
			fn(c.rule)
		}
	}
	m.cur = nil
	m.ev = nil
}
