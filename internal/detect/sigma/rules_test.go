package sigma

import (
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// TestSharedRulesLoad loads every rule copied from SigmaHQ into ../shared/sigma/rules.
func TestSharedRulesLoad(t *testing.T) {
	dir := conformancetest.Shared(t, "sigma", "rules")
	files, err := ExpandPatterns([]string{filepath.Join(dir, "**", "*.yml")})
	if err != nil {
		t.Fatal(err)
	}
	var rules []*Rule
	for _, f := range files {
		rs, ps := ParseFile(f)
		for _, p := range ps {
			t.Errorf("%s", p)
		}
		rules = append(rules, rs...)
	}
	if len(rules) != 112 {
		t.Errorf("loaded %d rules, want 112", len(rules))
	}
	set, err := Compile(rules, BuiltinFieldMapping())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(set.byDataset["aws.cloudtrail"].rules); n != 57 {
		t.Errorf("%d rules for aws.cloudtrail, want 57", n)
	}
}
