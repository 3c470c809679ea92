package jsonparse

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

func TestGolden(t *testing.T) {
	parsetest.Golden(t, "testdata", parsetest.Lines, func() parse.Parser { return New(defaults()) })
}
