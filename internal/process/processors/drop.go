package processors

import "github.com/vigil-sec/vigil/internal/process"

// DropConfig configures drop: it discards every event its `if` holds for (all
// events without one), counted as vigil_discarded_total{reason="drop:<name>"}.
type DropConfig struct{}

// Validate implements config.Component.
func (c *DropConfig) Validate() error { return nil }

type drop struct{}

func newDrop(*DropConfig, process.Deps) (process.Processor, error) { return drop{}, nil }

func (drop) Process(*process.Item) (process.Verdict, error) { return process.Drop, nil }
func (drop) ReadOnly() bool                                 { return true }
