package albparse

import "github.com/vigil-sec/vigil/internal/parse"

// Config holds the alb format's options.
type Config struct {
	// Strict rejects lines that carry more fields than the newest layout Vigil knows.
	// Off by default: AWS appends fields to these logs from time to time, and a
	// pipeline should keep ingesting them (the extra fields are ignored) rather than
	// dead-letter every line the day AWS ships a new one.
	Strict bool `yaml:"strict"`
}

// NewConfig returns the defaults.
func NewConfig() *Config { return &Config{} }

// Validate implements parse.Config; every combination of the options is valid.
func (c *Config) Validate() error { return nil }

// Format describes the alb format: Elastic Load Balancing access logs (ALB, NLB TLS
// listeners, Classic ELB) and ALB connection logs, one line per record.
func Format() parse.Format {
	return parse.Format{
		Name:      "alb",
		Dataset:   Dataset,
		NewConfig: func() parse.Config { return NewConfig() },
		New: func(cfg parse.Config) (parse.Parser, error) {
			c, _ := cfg.(*Config)
			if c == nil {
				c = NewConfig()
			}
			return New(*c), nil
		},
	}
}
