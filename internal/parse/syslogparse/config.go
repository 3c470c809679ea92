// Package syslogparse parses syslog messages, RFC 5424 and RFC 3164 (BSD) with the
// usual vendor variants, detected per message, into ECS log.syslog.*, host.hostname,
// process.name, process.pid and message (dataset "syslog").
package syslogparse

import (
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/internal/parse"
)

// Dataset is the event.dataset of syslog events.
const Dataset = "syslog"

// Config holds the syslog format's options.
type Config struct {
	// Timezone is the IANA zone (or "UTC", "Local") that RFC 3164 timestamps, which
	// carry no zone, are read in. Default "UTC".
	Timezone string `yaml:"timezone"`

	// Now returns the current time; RFC 3164 timestamps carry no year, so the year is
	// chosen to put the timestamp no more than a day after Now. Nil means time.Now.
	// Not a YAML option: tests set it to a fixed clock.
	Now func() time.Time `yaml:"-"`
}

// NewConfig returns the defaults.
func NewConfig() *Config { return &Config{Timezone: "UTC"} }

// Validate implements parse.Config.
func (c *Config) Validate() error {
	if c.Timezone == "" {
		return fmt.Errorf("timezone: must not be empty (use \"UTC\")")
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	return nil
}

// Format describes the syslog format.
func Format() parse.Format {
	return parse.Format{
		Name:      "syslog",
		Dataset:   Dataset,
		NewConfig: func() parse.Config { return NewConfig() },
		New: func(cfg parse.Config) (parse.Parser, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("syslog: unexpected config type %T", cfg)
			}
			return New(c)
		},
	}
}
