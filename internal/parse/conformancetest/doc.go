// Package conformancetest holds the helpers the parsers' TestConformance functions
// share: locating the shared peer fixtures (../shared/conformance next to the module),
// running inputs through a parser and flattening what it emits, normalising values
// for comparison and keeping the score per peer. It imports "testing" and is meant to
// be imported by _test.go files only.
//
// Two styles of suite use it. The AWS log parsers (ALB, CloudFront, VPC flow logs)
// read fixture lines with [RunLine] and score fields with [Score]; the access and
// syslog parsers (Apache, nginx, syslog) run one input at a time with [RunOne] and
// count with [Tally].
package conformancetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// moduleParent returns the directory that holds the module's directory (the one with
// go.mod), searching upwards from the working directory.
func moduleParent(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("conformance: go.mod not found above the package directory")
		}
		dir = parent
	}
	return filepath.Join(dir, "..")
}

// RequireSharedEnv names the environment variable that makes absent shared fixtures a
// failure instead of a skip. .ci/run sets it, since CI always has ../shared.
const RequireSharedEnv = "VIGIL_REQUIRE_SHARED"

// Shared returns ../shared/<rel...> next to the directory holding go.mod. When it is
// absent — a clone on its own — the test is skipped with a message that says so and
// why, or fails when RequireSharedEnv is "1".
func Shared(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{moduleParent(t), "shared"}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("SHARED FIXTURES ABSENT: %s not found, so this test did not run "+
			"(the shared folder sits beside the clone; set %s=1 to make its absence a failure)", p, RequireSharedEnv)
		if os.Getenv(RequireSharedEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// Root returns the shared conformance folder: ../shared/conformance next to the
// directory holding go.mod (see Shared for when it is absent).
func Root(t testing.TB) string {
	t.Helper()
	Shared(t, "conformance", "index.json")
	return Shared(t, "conformance")
}

// FormatDir returns the shared conformance folder of one format,
// ../shared/conformance/<format> (see Shared for when it is absent).
func FormatDir(t testing.TB, format string) string {
	t.Helper()
	return Shared(t, "conformance", format)
}
