package configdoc

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/internal/components"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md")

// TestReferenceUpToDate fails when docs/configuration.md no longer matches the config
// structs; `go test ./internal/configdoc -update` regenerates it.
func TestReferenceUpToDate(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate(root, components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docs", "configuration.md")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go test ./internal/configdoc -update", err)
	}
	if string(want) != got {
		t.Fatalf("docs/configuration.md is out of date: run go test ./internal/configdoc -update and commit it")
	}
}
