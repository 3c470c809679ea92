package process

import (
	"fmt"
	"strconv"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/process/cond"
)

// Counter receives a chain's counts; component.Counters implements it.
type Counter interface {
	// Error counts a failure that did not stop the event: "condition_error" for an
	// `if` that failed to evaluate (the step is skipped), "processor_panic".
	Error(reason string)
}

// Types looks a processor type up by name.
type Types func(name string) (Type, bool)

// step is one configured processor of a chain.
type step struct {
	index    int
	typ      string
	name     string
	cond     *cond.Program // nil: always
	proc     Processor
	readOnly bool
	// reason is the discard reason of a drop: "<type>:<name or index>".
	reason string
}

// Chain is one worker's ordered list of processors. It is not safe for concurrent
// use.
type Chain struct {
	steps []step
	eval  *cond.Evaluator
	count Counter
}

// NewChain builds a chain from the configured processors. cfgs must have passed the
// config's validation; count may be nil.
func NewChain(cfgs []*config.Processor, types Types, deps Deps, count Counter) (*Chain, error) {
	c := &Chain{eval: cond.NewEvaluator(), count: count}
	for i, pc := range cfgs {
		t, ok := types(pc.Type)
		if !ok {
			return nil, fmt.Errorf("processing.processors[%d]: unknown processor type %q", i, pc.Type)
		}
		s := step{index: i, typ: pc.Type, name: pc.Name}
		if pc.If != "" {
			p, err := cond.CompileBool(pc.If)
			if err != nil {
				return nil, fmt.Errorf("processing.processors[%d].if: %w", i, err)
			}
			s.cond = p
		}
		d := deps
		d.Name = pc.Name
		proc, err := t.New(pc.Settings, d)
		if err != nil {
			return nil, fmt.Errorf("processing.processors[%d] (%s): %w", i, pc.Type, err)
		}
		s.proc = proc
		if ro, ok := proc.(ReadOnly); ok {
			s.readOnly = ro.ReadOnly()
		}
		label := pc.Name
		if label == "" {
			label = strconv.Itoa(i)
		}
		s.reason = pc.Type + ":" + label
		c.steps = append(c.steps, s)
	}
	return c, nil
}

// Len returns the number of processors.
func (c *Chain) Len() int { return len(c.steps) }

// Run runs the processors on it in order. It returns Drop with the discard reason
// when one dropped the event, or a *StepError when one rejected it; it never panics.
func (c *Chain) Run(it *Item) (Verdict, string, error) {
	if len(c.steps) == 0 {
		return Pass, "", nil
	}
	// The dataset before the first step that may change the event, to check a
	// routed one; read only when such a step runs.
	before := ""
	lastWriter := -1
	for i := range c.steps {
		s := &c.steps[i]
		if s.cond != nil {
			ok, err := c.eval.True(s.cond, it.Event)
			if err != nil {
				// A condition that cannot be evaluated for this event (a missing field
				// compared with a number) does not hold.
				c.error("condition_error")
				continue
			}
			if !ok {
				continue
			}
		}
		if !s.readOnly && lastWriter < 0 {
			before = it.Dataset()
		}
		v, err := c.call(s, it)
		if err != nil {
			return Pass, "", &StepError{Index: s.index, Type: s.typ, Name: s.name, Err: err}
		}
		if !s.readOnly {
			it.fresh = false
			lastWriter = i
		}
		if v == Drop {
			return Drop, s.reason, nil
		}
	}
	if lastWriter >= 0 {
		if ds := it.Dataset(); ds != before && !config.ValidDataset(ds) {
			s := &c.steps[lastWriter]
			return Pass, "", &StepError{Index: s.index, Type: s.typ, Name: s.name,
				Err: fmt.Errorf("event.dataset %q is not a valid dataset (letters, digits, '_', '-' and '.')", ds)}
		}
	}
	return Pass, "", nil
}

// call runs one processor, turning a panic into a rejection.
func (c *Chain) call(s *step, it *Item) (v Verdict, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.error("processor_panic")
			// The event may be half changed; it is rejected whole.
			it.fresh = false
			v, err = Pass, fmt.Errorf("the processor panicked (a bug; please report it with the record): %v", r)
		}
	}()
	return s.proc.Process(it)
}

func (c *Chain) error(reason string) {
	if c.count != nil {
		c.count.Error(reason)
	}
}
