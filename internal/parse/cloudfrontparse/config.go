package cloudfrontparse

import (
	"fmt"

	"github.com/vigil-sec/vigil/internal/parse"
)

// Config holds the cloudfront format's options.
type Config struct {
	// Fields is the column order of lines that arrive without a "#Fields:" header
	// (for example when a shipper strips the header lines). Empty means the standard
	// 33-column layout of CloudFront standard logs version 1.0. A "#Fields:" line in
	// the input always wins over this option.
	Fields []string `yaml:"fields"`
}

// NewConfig returns the defaults.
func NewConfig() *Config { return &Config{} }

// Validate implements parse.Config.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	for i, f := range c.Fields {
		if f == "" {
			return fmt.Errorf("fields[%d]: empty field name", i)
		}
		if seen[f] {
			return fmt.Errorf("fields[%d]: %q listed twice", i, f)
		}
		seen[f] = true
	}
	return nil
}

// Format describes the cloudfront format: CloudFront standard (access) log lines,
// tab-separated, with their "#Version:" and "#Fields:" header lines.
func Format() parse.Format {
	return parse.Format{
		Name:      "cloudfront",
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
