package apacheparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

func TestGolden(t *testing.T) {
	parsetest.Golden(t, "testdata", parsetest.Lines, func() parse.Parser { return New() })
}

func TestFormat(t *testing.T) {
	f := Format()
	cfg := f.NewConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.New(cfg); err != nil {
		t.Fatal(err)
	}
	if f.Name != "apache" || f.Dataset != "apache.access" {
		t.Fatalf("format %q dataset %q", f.Name, f.Dataset)
	}
}
