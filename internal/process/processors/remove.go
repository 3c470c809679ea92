package processors

import (
	"errors"

	"github.com/vigil-sec/vigil/internal/process"
)

// RemoveConfig configures remove: it deletes fields, leaves or whole objects.
type RemoveConfig struct {
	// Fields are the paths to delete, like [event.original, url.query].
	Fields []string `yaml:"fields"`
}

// Validate implements config.Component.
func (c *RemoveConfig) Validate() error {
	if len(c.Fields) == 0 {
		return errNoFields
	}
	var errs []error
	for _, f := range c.Fields {
		if err := checkField("fields", f); err != nil {
			errs = append(errs, err)
		} else if err := checkNotProtected("fields", f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type remove struct{ fields []string }

func newRemove(c *RemoveConfig, _ process.Deps) (process.Processor, error) {
	return &remove{fields: append([]string(nil), c.Fields...)}, nil
}

func (r *remove) Process(it *process.Item) (process.Verdict, error) {
	for _, f := range r.fields {
		it.Event.Delete(f)
	}
	return process.Pass, nil
}
