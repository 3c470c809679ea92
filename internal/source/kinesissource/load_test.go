package kinesissource_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/kinesissource"
)

func TestLoadConfig(t *testing.T) {
	cfg, err := config.Load("testdata/config_kinesis.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Sources[0].Settings.(*kinesissource.Config)
	if c.Stream != "central-logs" || c.Endpoint != "http://127.0.0.1:4567" || c.StartAt != kinesissource.StartAtTimestamp ||
		!c.Timestamp.Equal(time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)) || c.MaxRecords != 500 || c.LeaseTTL != 20*time.Second ||
		c.EnhancedFanOut != (kinesissource.FanOutConfig{Enabled: true, ConsumerName: "vigil-central"}) ||
		cfg.Sources[0].Format != "cloudwatch_logs" {
		t.Fatalf("loaded %+v", c)
	}
	_, err = config.Load("testdata/config_typo.yaml", components.Builtin())
	if err == nil || !strings.Contains(err.Error(), "lease_tll") || !strings.Contains(err.Error(), "config_typo.yaml:") {
		t.Fatalf("typo: want an error naming lease_tll and its line, got %v", err)
	}
}
