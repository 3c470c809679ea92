package testutil

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// toolBins caches, per test binary, where `go tool -n NAME` put each pinned tool.
var toolBins sync.Map // name → *toolBin

type toolBin struct {
	once sync.Once
	path string
	err  error
}

// ToolBinary resolves a Go tool pinned in go.mod (`go tool -n NAME`) to its built
// binary once, so that a test starts and signals the server itself rather than the
// go command.
func ToolBinary(t testing.TB, name string) string {
	t.Helper()
	v, _ := toolBins.LoadOrStore(name, &toolBin{})
	b := v.(*toolBin)
	b.once.Do(func() {
		out, err := exec.Command("go", "tool", "-n", name).Output()
		b.path, b.err = strings.TrimSpace(string(out)), err
	})
	if b.err != nil {
		t.Fatalf("%s is pinned in go.mod as a tool; `go tool -n %s` failed: %v", name, name, b.err)
	}
	return b.path
}
