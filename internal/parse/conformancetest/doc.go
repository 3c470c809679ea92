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

// Root returns the shared conformance folder: ../shared/conformance next to the
// directory holding go.mod. It fails the test (never skips) when the folder or its
// index.json is absent.
func Root(t testing.TB) string {
	t.Helper()
	c := filepath.Join(moduleParent(t), "shared", "conformance")
	if _, err := os.Stat(filepath.Join(c, "index.json")); err != nil {
		t.Fatalf("conformance: shared fixtures not found at %s: %v", c, err)
	}
	return c
}

// FormatDir returns the shared conformance folder of one format,
// ../shared/conformance/<format> next to the directory holding go.mod. It fails the
// test (never skips) when the folder is absent.
func FormatDir(t testing.TB, format string) string {
	t.Helper()
	c := filepath.Join(moduleParent(t), "shared", "conformance", format)
	if fi, err := os.Stat(c); err != nil || !fi.IsDir() {
		t.Fatalf("conformance: shared fixtures missing at %s: the conformance suite cannot run without them", c)
	}
	return c
}
