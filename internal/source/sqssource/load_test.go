package sqssource_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/sqssource"
)

func TestLoadConfig(t *testing.T) {
	cfg, err := config.Load("testdata/config_sqs.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Sources[0].Settings.(*sqssource.Config)
	if c.QueueURL != "http://127.0.0.1:4566/000000000000/events" || c.Endpoint != "http://127.0.0.1:4566" || c.WaitTime != 20*time.Second ||
		c.VisibilityTimeout != time.Minute || c.MaxInFlight != 4 || c.MaxMessages != 10 {
		t.Fatalf("loaded %+v", c)
	}
	_, err = config.Load("testdata/config_typo.yaml", components.Builtin())
	if err == nil || !strings.Contains(err.Error(), "max_inflight") || !strings.Contains(err.Error(), "config_typo.yaml:") {
		t.Fatalf("typo: want an error naming max_inflight and its line, got %v", err)
	}
}
