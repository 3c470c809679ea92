package elasticsearchsink

import (
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
)

// TestMappingFiles: every embedded mapping file is valid JSON of known shape, each
// built-in dataset has one, and the OpenSearch flavour holds no Elasticsearch-only
// type.
func TestMappingFiles(t *testing.T) {
	names, err := fs.Glob(mappingFiles, "mappings/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no mapping files: %v", err)
	}
	have := map[string]bool{}
	for _, n := range names {
		data, _ := mappingFiles.ReadFile(n)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		for k := range m {
			switch k {
			case "_comment", "dynamic_templates", "properties":
			default:
				t.Errorf("%s: unknown key %q", n, k)
			}
		}
		have[strings.TrimSuffix(strings.TrimPrefix(n, "mappings/"), ".json")] = true
	}
	for _, d := range append([]string{"ecs"}, BuiltinDatasets...) {
		if !have[d] {
			t.Errorf("no mappings/%s.json", d)
		}
	}
	os, _ := json.Marshal(Mappings(FlavourOpenSearch, BuiltinDatasets...))
	for _, bad := range []string{"match_only_text", `"flattened"`} {
		if strings.Contains(string(os), bad) {
			t.Errorf("OpenSearch mappings hold %s", bad)
		}
	}
	es, _ := json.Marshal(Mappings(FlavourElasticsearch, "syslog"))
	if !strings.Contains(string(es), `"log.syslog.structured_data":{"type":"flattened"}`) ||
		!strings.Contains(string(es), `"message":{"type":"match_only_text"}`) {
		t.Errorf("Elasticsearch mappings: %s", es)
	}
}
