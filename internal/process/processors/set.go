package processors

import (
	"errors"
	"fmt"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/cond"
)

// SetConfig configures set: it sets one field to a constant, to another field's
// value, or to the result of an expression. Exactly one of value, value_from and
// expr is given.
type SetConfig struct {
	// Field is the dotted path to set, like labels.env.
	Field string `yaml:"field"`
	// Value is a constant: a string, number, boolean or list.
	Value any `yaml:"value"`
	// ValueFrom is the path of a field whose value is copied; when that field is
	// missing, nothing is set.
	ValueFrom string `yaml:"value_from"`
	// Expr is an expr expression over the event's fields; its result is the value
	// (nil leaves the field unset).
	Expr string `yaml:"expr"`
}

// Validate implements config.Component.
func (c *SetConfig) Validate() error {
	var errs []error
	if err := checkField("field", c.Field); err != nil {
		errs = append(errs, err)
	} else if c.Field == "event.id" || c.Field == "@timestamp" {
		errs = append(errs, fmt.Errorf("field: %s belongs to the pipeline and cannot be set", c.Field))
	}
	n := 0
	if c.Value != nil {
		n++
		if _, err := constant(c.Value); err != nil {
			errs = append(errs, fmt.Errorf("value: %w", err))
		}
	}
	if c.ValueFrom != "" {
		n++
		if err := checkField("value_from", c.ValueFrom); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Expr != "" {
		n++
		if _, err := cond.Compile(c.Expr); err != nil {
			errs = append(errs, fmt.Errorf("expr: %w", err))
		}
	}
	if n != 1 {
		errs = append(errs, errors.New("value: give exactly one of value, value_from and expr"))
	}
	return errors.Join(errs...)
}

// constant turns a YAML value into an event value.
func constant(v any) (event.Value, error) {
	switch x := v.(type) {
	case uint64:
		return event.Int(int64(x)), nil
	case int64:
		return event.Int(x), nil
	}
	return cond.Value(v)
}

type set struct {
	field string
	value event.Value
	from  string
	expr  *cond.Program
	eval  *cond.Evaluator
}

func newSet(c *SetConfig, _ process.Deps) (process.Processor, error) {
	s := &set{field: c.Field, from: c.ValueFrom}
	if c.Value != nil {
		v, err := constant(c.Value)
		if err != nil {
			return nil, err
		}
		s.value = v
	}
	if c.Expr != "" {
		p, err := cond.Compile(c.Expr)
		if err != nil {
			return nil, err
		}
		s.expr, s.eval = p, cond.NewEvaluator()
	}
	return s, nil
}

func (s *set) Process(it *process.Item) (process.Verdict, error) {
	e := it.Event
	switch {
	case s.from != "":
		v, ok := e.Get(s.from)
		if !ok {
			return process.Pass, nil
		}
		setField(e, s.field, v)
	case s.expr != nil:
		out, err := s.eval.Eval(s.expr, e)
		if err != nil {
			return process.Pass, err
		}
		if out == nil {
			return process.Pass, nil
		}
		v, err := cond.Value(out)
		if err != nil {
			return process.Pass, err
		}
		setField(e, s.field, v)
	default:
		setField(e, s.field, s.value)
	}
	return process.Pass, nil
}

// setField sets path, replacing a subtree or a leaf on the way to it: setting
// user.name drops a leaf "user", setting user drops user.*.
func setField(e *event.Event, path string, v event.Value) {
	if _, ok := e.Get(path); !ok {
		e.Delete(path)
		for i := len(path) - 1; i > 0; i-- {
			if path[i] == '.' {
				if _, leaf := e.Get(path[:i]); leaf {
					e.Delete(path[:i])
				}
			}
		}
	}
	e.Set(path, v)
}
