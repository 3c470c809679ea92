package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/stream"
)

// TestBannerAndLogsHideURLPasswords runs the pipeline on an external buffer whose URL
// carries a password: neither the start-up banner nor the log shows it.
func TestBannerAndLogsHideURLPasswords(t *testing.T) {
	const password = "s3cret-in-the-url"
	// The external server: another embedded stream serving an authenticated port.
	srvCfg := config.Defaults().Buffer
	srvCfg.Listen = "127.0.0.1:0"
	srvCfg.ListenAuth = config.ListenAuth{User: "vigil", Password: password}
	srv, err := stream.Open(context.Background(), srvCfg, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	reg := components.Builtin()
	cfg, err := EmbeddedDefault(reg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sources[0].Settings.(*httpsource.Config).Address = "127.0.0.1:0"
	sys := cfg.Sources[1].Settings.(*syslogsource.Config)
	sys.TCP, sys.UDP = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Buffer.Type = "nats"
	cfg.Buffer.URLs = []string{"nats://vigil:" + password + "@" + srv.ListenAddr()}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs, out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Registry: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop(context.Background()) }()
	printBanner(&env{stdout: &out}, cfg, p, nil)

	if !strings.Contains(out.String(), "NATS at nats://vigil:xxxxx@"+srv.ListenAddr()) {
		t.Errorf("banner:\n%s", out.String())
	}
	if all := out.String() + logs.String(); strings.Contains(all, password) {
		t.Errorf("password shown:\n%s", all)
	}
}
