package sigma

import (
	"fmt"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
)

type processor struct {
	eval  *Evaluator
	alert event.Event
	err   error
}

var (
	_ process.Processor = (*processor)(nil)
	_ process.ReadOnly  = (*processor)(nil)
)

// New returns a sigma processor of a validated config.
func New(c *Config, _ process.Deps) (process.Processor, error) {
	if c.set == nil {
		if err := c.Validate(); err != nil {
			return nil, err
		}
	}
	return &processor{eval: c.set.NewEvaluator()}, nil
}

// Type is the sigma processor type.
func Type() process.Type {
	return process.Type{
		Name:      "sigma",
		NewConfig: func() config.Component { return NewConfig() },
		New: func(c config.Component, d process.Deps) (process.Processor, error) {
			cfg, ok := c.(*Config)
			if !ok {
				return nil, fmt.Errorf("config of type %T, want *sigma.Config", c)
			}
			return New(cfg, d)
		},
	}
}

func (p *processor) ReadOnly() bool { return true }

// Process emits one alert per matching rule. An alert that cannot be published
// rejects the event, so that it is dead-lettered and can be replayed rather than
// its detection lost.
func (p *processor) Process(it *process.Item) (process.Verdict, error) {
	p.err = nil
	p.eval.Match(it.Event, it.Dataset(), func(r *Rule) {
		if p.err != nil {
			return
		}
		fillAlert(&p.alert, r, it.Event, it.Doc())
		if err := it.Emit(&p.alert); err != nil {
			p.err = fmt.Errorf("sigma rule %s: emitting the alert: %w", r.ID, err)
		}
	})
	p.alert.Reset()
	return process.Pass, p.err
}
