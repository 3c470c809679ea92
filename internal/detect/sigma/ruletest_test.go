package sigma_test

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/detect/sigma"
)

func TestRuleTests(t *testing.T) {
	results, err := sigma.RunTestFiles("testdata/ruletests", components.Builtin().Format)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 4 {
		t.Fatalf("%d tests ran", len(results))
	}
	for _, r := range results {
		for _, f := range r.Failures {
			t.Errorf("%s: %s: %s", r.File, r.Name, f)
		}
	}
}
