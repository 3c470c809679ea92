package threshold

import (
	"math"
	"strconv"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/cond"
)

// Type is the threshold processor type, for processors.Types.
func Type() process.Type {
	return process.Type{Name: "threshold", NewConfig: func() configComponent { return NewConfig() }, New: newProcessor}
}

// processor turns each event its `if` holds for into a sample of its rule. It is
// built once per worker and holds only reusable buffers.
type processor struct {
	r   *rule
	s   sample
	buf []byte
}

var (
	_ process.Processor = (*processor)(nil)
	_ process.ReadOnly  = (*processor)(nil)
)

func newProcessor(c configComponent, d process.Deps) (process.Processor, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, errConfigType(c)
	}
	r, err := newRule(d.Name, cfg)
	if err != nil {
		return nil, err
	}
	return &processor{r: r}, nil
}

func (p *processor) ReadOnly() bool { return true }

// Process publishes the event's sample; an event without one of the group_by
// fields, or without a time, is not counted.
func (p *processor) Process(it *process.Item) (process.Verdict, error) {
	e := it.Event
	s := &p.s
	tv, _ := e.Get("@timestamp")
	t, ok := tv.AsTime()
	if !ok {
		return process.Pass, nil
	}
	s.t = t.UnixNano()
	idv, _ := e.Get("event.id")
	s.id = idv.Str()
	s.group = s.group[:0]
	for _, f := range p.r.cfg.GroupBy {
		v, ok := e.Get(f)
		if !ok || v.IsNull() {
			return process.Pass, nil
		}
		s.group = append(s.group, text(v))
	}
	s.nums = s.nums[:0]
	for _, f := range p.r.nums {
		s.nums = append(s.nums, number(e, f))
	}
	s.strs, s.has = s.strs[:0], s.has[:0]
	for _, f := range p.r.strs {
		v, ok := e.Get(f)
		ok = ok && !v.IsNull()
		s.strs, s.has = append(s.strs, text(v)), append(s.has, ok)
	}
	p.buf = appendSample(p.buf[:0], s)
	return process.Pass, it.Sample(p.r.name, p.buf)
}

// text is a value as a group key or distinct value: strings as they are, other
// values as their JSON.
func text(v event.Value) string {
	switch v.Kind() {
	case event.KindString, event.KindBytes:
		return v.Str()
	case event.KindInt:
		n, _ := v.AsInt()
		return strconv.FormatInt(n, 10)
	}
	switch x := cond.Native(v).(type) {
	case string:
		return x // a JSON string kept raw by the parser
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return string(v.AppendJSON(nil))
}

// number reads a field as a number: a number, or a string holding one; NaN
// otherwise.
func number(e *event.Event, f string) float64 {
	v, ok := e.Get(f)
	if !ok {
		return math.NaN()
	}
	if x, ok := v.AsFloat(); ok {
		return x
	}
	if v.Kind() == event.KindString || v.Kind() == event.KindBytes {
		if x, err := strconv.ParseFloat(v.Str(), 64); err == nil {
			return x
		}
	}
	if n, ok := cond.Native(v).(float64); ok {
		return n
	}
	return math.NaN()
}
