package processors

import (
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/validate"
)

// ValidateConfig configures validate: it checks each event against the JSON Schema
// of its dataset (docs/validation.md); an event that fails goes to
// vigil.dlq.validate with its raw record and every violation.
type ValidateConfig struct {
	// Datasets maps a dataset name or glob to "builtin", "base" or the path of a
	// JSON Schema file; see processing.validate.datasets.
	Datasets map[string]string `yaml:"datasets"`
	// RequireSchema rejects events of datasets that have neither a shipped schema
	// nor a file of their own.
	RequireSchema bool `yaml:"require_schema"`
}

// NewValidateConfig returns the defaults: every shipped dataset checked against its
// shipped schema, other datasets against the base ECS schema.
func NewValidateConfig() *ValidateConfig { return &ValidateConfig{} }

// Validate implements config.Component.
func (c *ValidateConfig) Validate() error { return c.schemas().Validate() }

func (c *ValidateConfig) schemas() *validate.Config {
	return &validate.Config{Enabled: true, Datasets: c.Datasets, RequireSchema: c.RequireSchema}
}

type validator struct{ v *validate.Validator }

func newValidate(c *ValidateConfig, _ process.Deps) (process.Processor, error) {
	v, err := validate.New(c.schemas())
	if err != nil {
		return nil, err
	}
	return &validator{v: v}, nil
}

func (p *validator) Process(it *process.Item) (process.Verdict, error) {
	if err := p.v.Check(it.Dataset(), it.Doc()); err != nil {
		return process.Pass, &process.ValidationError{Err: err}
	}
	return process.Pass, nil
}

func (p *validator) ReadOnly() bool { return true }
