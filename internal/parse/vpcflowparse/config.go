package vpcflowparse

import (
	"fmt"
	"strings"

	"github.com/vigil-sec/vigil/internal/parse"
)

// Config holds the vpcflow format's options.
type Config struct {
	// Fields is the custom log format of the flow log, in order, with AWS's names
	// ("srcaddr", "pkt-src-aws-service" or "pkt_src_aws_service"). Empty means the
	// fields are taken from a header line when the input has one, and otherwise the
	// default format (the 14 version 2 fields) followed by the other fields in AWS's
	// documented order when a line has more.
	Fields []string `yaml:"fields"`
}

// NewConfig returns the defaults.
func NewConfig() *Config { return &Config{} }

// Validate implements parse.Config.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	for i, f := range c.Fields {
		n := normalize(f)
		if fieldID(n) == fUnknown {
			return fmt.Errorf("fields[%d]: unknown VPC flow log field %q", i, f)
		}
		if seen[n] {
			return fmt.Errorf("fields[%d]: %q listed twice", i, f)
		}
		seen[n] = true
	}
	return nil
}

func normalize(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "-", "_") }

// Format describes the vpcflow format: Amazon VPC flow log records, one per line.
func Format() parse.Format {
	return parse.Format{
		Name:      "vpcflow",
		Dataset:   Dataset,
		NewConfig: func() parse.Config { return NewConfig() },
		New: func(cfg parse.Config) (parse.Parser, error) {
			c, _ := cfg.(*Config)
			if c == nil {
				c = NewConfig()
			}
			if err := c.Validate(); err != nil {
				return nil, err
			}
			return New(*c), nil
		},
	}
}
