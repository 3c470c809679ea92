package filesource_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/filesource"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*filesource.Config)
		want   string // substring of the error; empty for valid
	}{
		{name: "defaults with a path", mutate: func(*filesource.Config) {}},
		{name: "no paths", mutate: func(c *filesource.Config) { c.Paths = nil }, want: "paths: set at least one glob"},
		{name: "relative path", mutate: func(c *filesource.Config) { c.Paths = []string{"logs/*.log"} }, want: "want an absolute path"},
		{name: "bad glob", mutate: func(c *filesource.Config) { c.Paths = []string{"/var/log/[x"} }, want: "paths[0]"},
		{name: "bad exclude", mutate: func(c *filesource.Config) { c.Exclude = []string{"[x"} }, want: "exclude[0]"},
		{name: "start_at", mutate: func(c *filesource.Config) { c.StartAt = "middle" }, want: "start_at: want end or beginning"},
		{name: "max line", mutate: func(c *filesource.Config) { c.MaxLineBytes = 2 << 20 }, want: "max_line_bytes"},
		{name: "multiline regexp", mutate: func(c *filesource.Config) { c.Multiline.Start = "(x" }, want: "multiline.start"},
		{name: "multiline timeout", mutate: func(c *filesource.Config) { c.Multiline.Timeout = 0 }, want: "multiline.timeout"},
		{name: "scan interval", mutate: func(c *filesource.Config) { c.ScanInterval = time.Millisecond }, want: "scan_interval"},
		{name: "poll interval", mutate: func(c *filesource.Config) { c.PollInterval = 0 }, want: "poll_interval"},
		{name: "batch lines", mutate: func(c *filesource.Config) { c.BatchMaxLines = 0 }, want: "batch_max_lines"},
		{name: "batch bytes", mutate: func(c *filesource.Config) { c.BatchMaxBytes = 2 << 20 }, want: "batch_max_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := filesource.NewConfig()
			c.Paths = []string{"/var/log/*.log"}
			tt.mutate(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("want an error containing %q, got %v", tt.want, err)
			}
		})
	}
}

func TestConfigLoad(t *testing.T) {
	reg := components.Builtin()
	cfg, err := config.Load("testdata/config_file.yaml", reg)
	if err != nil {
		t.Fatal(err)
	}
	apache, _ := cfg.Source("apache")
	a := apache.Settings.(*filesource.Config)
	if apache.Format != "apache" || a.StartAt != "beginning" || !slices.Equal(a.Exclude, []string{"*.gz"}) || a.ScanInterval != time.Second {
		t.Errorf("apache: format %q, %+v", apache.Format, *a)
	}
	java, _ := cfg.Source("java")
	j := java.Settings.(*filesource.Config)
	if java.Format != "lines" || j.StartAt != "end" || j.MaxLineBytes != 256<<10 || j.Multiline.Start != `^\d{4}-\d{2}-\d{2} ` ||
		j.Multiline.Timeout != 2*time.Second || !j.ReadGzip || j.ScanInterval != 5*time.Second || j.BatchMaxLines != 2000 || j.BatchMaxBytes != 256<<10 {
		t.Errorf("java: format %q, %+v", java.Format, *j)
	}
	for file, wants := range map[string][]string{
		"config_typo.yaml":    {`sources.apache: unknown field "start_at_"`},
		"config_invalid.yaml": {"sources.apache", "want an absolute path", "start_at: want end or beginning", "multiline.start"},
	} {
		_, err := config.Load("testdata/"+file, reg)
		for _, w := range wants {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: want an error containing %q, got %v", file, w, err)
			}
		}
	}
}
