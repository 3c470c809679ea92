package sigma

import (
	"errors"
	"fmt"
)

// Config configures the sigma processor: it matches every event against Sigma rules
// and emits an alert (event.dataset vigil.alert) for each rule that matches. It never
// changes or drops the event.
type Config struct {
	// Rules are the rule files: paths, directories or globs (** spans directories).
	Rules []string `yaml:"rules"`
	// FieldMapping is "builtin" (the default) or a YAML file whose tables replace the
	// built-in ones for the datasets it names (see docs/detection.md).
	FieldMapping string `yaml:"field_mapping"`

	set *RuleSet // compiled by Validate, shared by every worker's instance
}

// NewConfig returns a Config with its defaults.
func NewConfig() *Config { return &Config{FieldMapping: "builtin"} }

// Validate implements config.Component: it loads and compiles the rules, so a rule
// Vigil cannot run is a config error with its file and line.
func (c *Config) Validate() error {
	if len(c.Rules) == 0 {
		return errors.New("rules: missing: name rule files or globs, like rules/**/*.yml")
	}
	fm, err := LoadFieldMapping(c.FieldMapping)
	if err != nil {
		return fmt.Errorf("field_mapping: %w", err)
	}
	set, err := Load(c.Rules, fm)
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	c.set = set
	return nil
}
