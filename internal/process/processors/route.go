package processors

import (
	"fmt"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
)

// RouteConfig configures route: it sets event.dataset, so the event is published
// under that dataset and the sinks whose inputs match it take it.
type RouteConfig struct {
	// Dataset is the new event.dataset, like security.high.
	Dataset string `yaml:"dataset"`
}

// Validate implements config.Component.
func (c *RouteConfig) Validate() error {
	if !config.ValidDataset(c.Dataset) {
		return fmt.Errorf("dataset: want letters, digits, '_', '-' and '.', got %q", c.Dataset)
	}
	return nil
}

type route struct{ dataset event.Value }

func newRoute(c *RouteConfig, _ process.Deps) (process.Processor, error) {
	return &route{dataset: event.String(c.Dataset)}, nil
}

func (r *route) Process(it *process.Item) (process.Verdict, error) {
	it.Event.Set("event.dataset", r.dataset)
	return process.Pass, nil
}
