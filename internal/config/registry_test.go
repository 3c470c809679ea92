package config

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vigil-sec/vigil/internal/parse"
)

// testRegistry knows one source type ("fake"), one sink type ("fakesink") and two
// formats, so these tests depend on no component package.
type testRegistry struct{}

var _ Registry = testRegistry{}

type fakeSource struct {
	Address string            `yaml:"address"`
	Tokens  []string          `yaml:"tokens" secret:"true"`
	Limit   ByteSize          `yaml:"limit"`
	Workers int               `yaml:"workers"`
	Labels  map[string]string `yaml:"labels"`
	Auth    fakeAuth          `yaml:"auth"`
}

type fakeAuth struct {
	User     string `yaml:"user"`
	Password string `yaml:"password" secret:"true"`
}

func (c *fakeSource) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("address: want host:port, got %q", c.Address))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("workers: must be at least 1"))
	}
	return errors.Join(errs...)
}

type fakeSink struct {
	Path  string `yaml:"path"`
	Level int    `yaml:"level"`
}

func (c *fakeSink) Validate() error {
	if c.Level < 0 || c.Level > 9 {
		return fmt.Errorf("level: want 0 to 9, got %d", c.Level)
	}
	return nil
}

type fakeFormat struct {
	Field string `yaml:"field"`
}

func (c *fakeFormat) Validate() error {
	if c.Field == "" {
		return errors.New("field: must not be empty")
	}
	return nil
}

func (testRegistry) SourceConfig(typ string) (Component, bool) {
	if typ == "fake" {
		return &fakeSource{Address: "127.0.0.1:9000", Workers: 1, Limit: 1 << 20}, true
	}
	return nil, false
}

func (testRegistry) SinkConfig(typ string) (Component, bool) {
	if typ == "fakesink" {
		return &fakeSink{Path: "/tmp/out", Level: 1}, true
	}
	return nil, false
}

func (testRegistry) FormatConfig(name string) (parse.Config, bool) {
	switch name {
	case "json":
		return &fakeFormat{Field: "@timestamp"}, true
	case "lines":
		return parse.NoConfig{}, true
	}
	return nil, false
}

func (testRegistry) SourceTypes() []string { return []string{"fake"} }
func (testRegistry) SinkTypes() []string   { return []string{"fakesink"} }
func (testRegistry) FormatNames() []string {
	return slices.Sorted(slices.Values([]string{"lines", "json"}))
}

func (testRegistry) ProcessorConfig(typ string) (Component, bool) {
	if typ == "fakeproc" {
		return &fakeProcessor{}, true
	}
	return nil, false
}

func (testRegistry) ProcessorTypes() []string { return []string{"fakeproc"} }

type fakeProcessor struct {
	Field string `yaml:"field"`
	Key   string `yaml:"key" secret:"true"`
}

func (p *fakeProcessor) Validate() error {
	if p.Field == "" {
		return errors.New("field: missing")
	}
	return nil
}
