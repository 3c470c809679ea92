// Package processors holds Vigil's built-in processor types: drop, set, rename,
// remove, redact, route and validate, plus threshold (internal/process/threshold) and
// sigma (internal/detect/sigma). Each is a config struct (keys, defaults,
// Validate) and a process.Processor built from it; Types lists them for
// internal/components.
package processors

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/detect/sigma"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/threshold"
)

// Types returns every built-in processor type.
func Types() []process.Type {
	return []process.Type{
		typeOf("drop", func() *DropConfig { return &DropConfig{} }, newDrop),
		typeOf("set", func() *SetConfig { return &SetConfig{} }, newSet),
		typeOf("rename", func() *RenameConfig { return &RenameConfig{} }, newRename),
		typeOf("remove", func() *RemoveConfig { return &RemoveConfig{} }, newRemove),
		typeOf("redact", func() *RedactConfig { return &RedactConfig{Mode: "hash", MaskChar: "*"} }, newRedact),
		typeOf("route", func() *RouteConfig { return &RouteConfig{} }, newRoute),
		typeOf("validate", NewValidateConfig, newValidate),
		threshold.Type(),
		sigma.Type(),
	}
}

// typeOf adapts a typed constructor to process.Type.
func typeOf[C config.Component](name string, newConfig func() C, newProc func(C, process.Deps) (process.Processor, error)) process.Type {
	return process.Type{
		Name:      name,
		NewConfig: func() config.Component { return newConfig() },
		New: func(c config.Component, d process.Deps) (process.Processor, error) {
			cfg, ok := c.(C)
			if !ok {
				return nil, fmt.Errorf("config of type %T, want %T", c, *new(C))
			}
			return newProc(cfg, d)
		},
	}
}

// checkField reports a field path that cannot name an ECS field.
func checkField(opt, path string) error {
	if path == "" {
		return fmt.Errorf("%s: missing: name a field, like labels.env", opt)
	}
	if strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
		return fmt.Errorf("%s: %q is not a field path (dotted names, like source.ip)", opt, path)
	}
	for _, c := range path {
		if c < 0x20 || c == '"' || c == '\\' || c == 0x7f {
			return fmt.Errorf("%s: %q holds a character a field name cannot have", opt, path)
		}
	}
	return nil
}

// protected are the fields the pipeline owns: a processor may read them but not
// remove or rename them, or sinks would lose the event's identity.
var protected = map[string]bool{"@timestamp": true, "event.id": true, "event.dataset": true}

func checkNotProtected(opt, path string) error {
	if protected[path] || path == "event" {
		return fmt.Errorf("%s: %s belongs to the pipeline and cannot be removed or renamed (route changes event.dataset)", opt, path)
	}
	return nil
}

var errNoFields = errors.New("fields: missing: name at least one field")

// Configured returns the processors cfg runs, in order: processing.processors, then
// the deprecated processing.validate as one more validate step when it is enabled.
func Configured(cfg *config.Config) []*config.Processor {
	list := append([]*config.Processor(nil), cfg.Processing.Processors...)
	if v := cfg.Processing.Validate; v.Enabled {
		list = append(list, &config.Processor{Type: "validate", Name: "processing.validate",
			Settings: &ValidateConfig{Datasets: v.Datasets, RequireSchema: v.RequireSchema}})
	}
	return list
}
