package pollsource_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/pollsource"
)

func TestLoadConfig(t *testing.T) {
	t.Setenv("POLL_TEST_TOKEN", "tok")
	cfg, err := config.Load("testdata/config_okta.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Sources[0].Settings.(*pollsource.Config)
	if c.Interval != time.Minute || c.Pagination.Type != "link" || c.Cursor.From != "$.published" || c.Headers["Authorization"] != "SSWS tok" {
		t.Fatalf("loaded %+v", c)
	}
	_, err = config.Load("testdata/config_typo.yaml", components.Builtin())
	if err == nil || !strings.Contains(err.Error(), "token_pth") || !strings.Contains(err.Error(), "config_typo.yaml:") {
		t.Fatalf("typo: want an error naming token_pth and its line, got %v", err)
	}
}
