package processors

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
)

// RenameConfig configures rename: it moves fields (leaves or whole objects) to new
// paths. A missing source field is left alone; an existing destination is replaced.
type RenameConfig struct {
	// Fields maps each source path to its new path, like {src_ip: source.ip}.
	Fields map[string]string `yaml:"fields"`
}

// Validate implements config.Component.
func (c *RenameConfig) Validate() error {
	if len(c.Fields) == 0 {
		return errNoFields
	}
	var errs []error
	for _, from := range sortedKeys(c.Fields) {
		to := c.Fields[from]
		for _, err := range []error{checkField("fields", from), checkField("fields", to), checkNotProtected("fields", from), checkNotProtected("fields", to)} {
			if err != nil {
				errs = append(errs, err)
			}
		}
		if from == to || strings.HasPrefix(to, from+".") {
			errs = append(errs, fmt.Errorf("fields: %s cannot be renamed to %s (into itself)", from, to))
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type renamePair struct{ from, to string }

type rename struct{ pairs []renamePair }

func newRename(c *RenameConfig, _ process.Deps) (process.Processor, error) {
	r := &rename{}
	for _, from := range sortedKeys(c.Fields) {
		r.pairs = append(r.pairs, renamePair{from, c.Fields[from]})
	}
	return r, nil
}

func (r *rename) Process(it *process.Item) (process.Verdict, error) {
	for _, p := range r.pairs {
		renameField(it.Event, p.from, p.to)
	}
	return process.Pass, nil
}

// renameField moves the leaf or subtree at from to to.
func renameField(e *event.Event, from, to string) {
	if !e.Has(from) {
		return
	}
	prefix := from + "."
	moving := func(k string) bool { return k == from || strings.HasPrefix(k, prefix) }
	// The destination is replaced: drop what it holds (but not what is being moved,
	// when to is a parent of from) and any leaf on the way to it ("source" when
	// renaming to source.ip), which would make the document ambiguous. This happens
	// before the move, so the moved value wins and is not deleted with that leaf.
	e.Fields = slices.DeleteFunc(e.Fields, func(f event.Field) bool {
		return !moving(f.Key) && (within(f.Key, to) || within(to, f.Key))
	})
	for i := range e.Fields {
		k := e.Fields[i].Key
		switch {
		case k == from:
			e.Fields[i].Key = to
		case strings.HasPrefix(k, prefix):
			e.Fields[i].Key = to + k[len(from):]
		}
	}
}

// within reports whether path is parent or below it.
func within(path, parent string) bool {
	return path == parent || len(path) > len(parent) && path[len(parent)] == '.' && strings.HasPrefix(path, parent)
}
