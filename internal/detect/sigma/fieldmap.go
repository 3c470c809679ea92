package sigma

import (
	"embed"
	"fmt"
	"os"
	"path"
	"strings"
)

//go:embed fieldmaps/*.yml
var builtinMaps embed.FS

// FieldMapping maps Sigma field names to Vigil's ECS paths, per dataset.
type FieldMapping struct {
	byDataset map[string]*datasetMap
}

type datasetMap struct {
	fields   map[string][]string
	prefixes []prefixMap // longest first
}

type prefixMap struct{ from, to string }

// BuiltinFieldMapping returns the mapping shipped with Vigil (fieldmaps/*.yml).
func BuiltinFieldMapping() *FieldMapping {
	fm := &FieldMapping{byDataset: map[string]*datasetMap{}}
	entries, _ := builtinMaps.ReadDir("fieldmaps")
	for _, e := range entries {
		data, _ := builtinMaps.ReadFile(path.Join("fieldmaps", e.Name()))
		if err := fm.add(e.Name(), data); err != nil {
			panic(err) // a broken embedded file is a build bug, caught by every test
		}
	}
	return fm
}

// LoadFieldMapping returns the built-in mapping with the datasets of file replaced by
// the file's own tables. file has the format of fieldmaps/*.yml.
func LoadFieldMapping(file string) (*FieldMapping, error) {
	fm := BuiltinFieldMapping()
	if file == "" || file == "builtin" {
		return fm, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if err := fm.add(file, data); err != nil {
		return nil, err
	}
	return fm, nil
}

func (fm *FieldMapping) add(file string, data []byte) error {
	docs, err := parseYAML(data)
	if err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	if len(docs) != 1 || docs[0].kind != nMap {
		return fmt.Errorf("%s: want one map with datasets, fields and prefixes", file)
	}
	doc := docs[0]
	dm := &datasetMap{fields: map[string][]string{}}
	for i, k := range doc.keys {
		v := doc.vals[i]
		switch k {
		case "datasets":
		case "fields", "prefixes":
			if v.kind != nMap {
				return fmt.Errorf("%s:%d: %s: want a map", file, v.line, k)
			}
			for j, name := range v.keys {
				targets, err := stringList(v.vals[j])
				if err != nil || len(targets) == 0 {
					return fmt.Errorf("%s:%d: %s.%s: want a field path or a list of them", file, v.kline[j], k, name)
				}
				if k == "fields" {
					dm.fields[name] = targets
				} else {
					dm.prefixes = append(dm.prefixes, prefixMap{from: name, to: targets[0]})
				}
			}
		default:
			return fmt.Errorf("%s:%d: unknown key %q (datasets, fields, prefixes)", file, doc.kline[i], k)
		}
	}
	ds, err := stringList(doc.get("datasets"))
	if err != nil || len(ds) == 0 {
		return fmt.Errorf("%s: datasets: name the datasets this mapping is for", file)
	}
	for i := 1; i < len(dm.prefixes); i++ { // longest prefix first
		for j := i; j > 0 && len(dm.prefixes[j].from) > len(dm.prefixes[j-1].from); j-- {
			dm.prefixes[j], dm.prefixes[j-1] = dm.prefixes[j-1], dm.prefixes[j]
		}
	}
	for _, d := range ds {
		fm.byDataset[d] = dm
	}
	return nil
}

func stringList(n *node) ([]string, error) {
	switch {
	case n == nil:
		return nil, nil
	case n.kind == nSeq:
		var out []string
		for _, v := range n.vals {
			if v.kind == nMap || v.kind == nSeq || v.kind == nNull {
				return nil, fmt.Errorf("want strings")
			}
			out = append(out, v.str)
		}
		return out, nil
	case n.kind == nMap || n.kind == nNull:
		return nil, fmt.Errorf("want a string or a list")
	}
	return []string{n.str}, nil
}

// Resolve returns the ECS paths a Sigma field name maps to in dataset: an exact
// entry, else a prefix entry, else the name itself as a dotted path.
func (fm *FieldMapping) Resolve(dataset, field string) []string {
	if dm := fm.byDataset[dataset]; dm != nil {
		if t, ok := dm.fields[field]; ok {
			return t
		}
		for _, p := range dm.prefixes {
			if rest, ok := strings.CutPrefix(field, p.from); ok {
				return []string{p.to + rest}
			}
		}
	}
	return []string{field}
}
