package threshold_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/process/threshold"
)

func TestConfigFile(t *testing.T) {
	cfg, err := config.Load("testdata/config_threshold.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Processing.Processors[0].Settings.(*threshold.Config)
	if c.Window != 5*time.Minute || c.WindowType != "tumbling" || c.Suppress != 10*time.Minute || c.Level != "high" ||
		c.GroupBy[0] != "url.domain" || c.Aggregate["p95"] != "aws.elb.target_processing_time.sec" {
		t.Errorf("%+v", c)
	}
}

func TestConfigProblems(t *testing.T) {
	_, err := config.Load("testdata/config_threshold_problems.yaml", components.Builtin())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"processing.processors[0].name: missing: a threshold rule needs a name",
		`processing.processors[2].name: "a" is the name of an earlier processor`,
		"windwo",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
