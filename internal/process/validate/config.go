package validate

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
)

// Values of Config.Datasets besides a schema file's path.
const (
	// Builtin selects the schema Vigil ships for the dataset (base-only when it
	// ships none).
	Builtin = "builtin"
	// BaseOnly checks the dataset against the base ECS schema only.
	BaseOnly = "base"
)

// Config configures schema validation of the processing stage.
type Config struct {
	// Enabled turns validation on. Default false.
	Enabled bool `yaml:"enabled"`
	// Datasets maps a dataset name or glob (path.Match syntax: *, ?, [...]) to
	// "builtin", "base" or the path of a JSON Schema file. A dataset uses the exact key
	// when there is one, else the longest matching glob, else the schema Vigil ships
	// for it. Every event is also checked against the base ECS schema.
	Datasets map[string]string `yaml:"datasets"`
	// RequireSchema rejects events of datasets that have neither a shipped schema nor
	// a file of their own; by default they pass with only the base check.
	RequireSchema bool `yaml:"require_schema"`
}

// NewConfig returns the defaults: disabled; when enabled, every shipped dataset uses
// its shipped schema and other datasets the base schema only.
func NewConfig() *Config { return &Config{} }

// Validate checks the patterns and that each schema file can be read; New compiles
// them. Each error starts with the option's name.
func (c *Config) Validate() error {
	var errs []error
	shipped := Datasets()
	for _, pattern := range sortedKeys(c.Datasets) {
		value := c.Datasets[pattern]
		if err := checkPattern(pattern); err != nil {
			errs = append(errs, fmt.Errorf("datasets: %q: %w", pattern, err))
			continue
		}
		switch value {
		case Builtin:
			if !matchesAny(pattern, shipped) {
				errs = append(errs, fmt.Errorf("datasets: %q: builtin, but Vigil ships no schema for a dataset it matches (shipped: %s); name a schema file or use base", pattern, strings.Join(shipped, ", ")))
			}
		case BaseOnly:
		case "":
			errs = append(errs, fmt.Errorf("datasets: %q: empty; want builtin, base or the path of a JSON Schema file", pattern))
		default:
			st, err := os.Stat(value)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("datasets: %q: schema file: %w", pattern, err))
			case st.IsDir():
				errs = append(errs, fmt.Errorf("datasets: %q: schema file %s is a directory; want a JSON Schema file", pattern, value))
			}
		}
	}
	return errors.Join(errs...)
}

// checkPattern accepts dataset characters and glob syntax.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty dataset pattern")
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune("_-.*?[]^!", c)) {
			return fmt.Errorf("character %q cannot be in a dataset; want letters, digits, _ - . and the glob characters * ? [ ]", c)
		}
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("bad glob: %w", err)
	}
	return nil
}

func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

func matchesAny(pattern string, names []string) bool {
	for _, n := range names {
		if ok, _ := path.Match(pattern, n); ok {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
