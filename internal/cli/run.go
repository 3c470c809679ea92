package cli

import (
	"context"
	"fmt"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/internal/admin"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/dlq"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
)

// EmbeddedDefault is the configuration of `vigil run` without -c: everything on
// loopback, stored under dataDir, archived to dataDir/archive.
func EmbeddedDefault(reg *components.Registry, dataDir string) (*config.Config, error) {
	cfg := config.Defaults()
	cfg.Embedded = true
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	httpCfg := httpsource.NewConfig()
	httpCfg.PathDataset = true
	fmtOpts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "http", Type: "http", Format: "json", FormatOptions: fmtOpts,
		KeepOriginal: true, Settings: httpCfg}}
	sysCfg := syslogsource.NewConfig()
	sysCfg.TCP = "127.0.0.1:5514"
	sysCfg.UDP = "127.0.0.1:5514"
	sysOpts, _ := reg.FormatConfig("syslog")
	cfg.Sources = append(cfg.Sources, &config.Source{Name: "syslog", Type: "syslog", Format: "syslog",
		FormatOptions: sysOpts, KeepOriginal: true, Settings: sysCfg})
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"},
		Settings: archivesink.NewConfig()}}
	return cfg, cfg.Validate()
}

// loadConfig reads -c or builds the embedded default, applying --data-dir.
func loadConfig(reg *components.Registry, file, dataDir string) (*config.Config, error) {
	if file == "" {
		return EmbeddedDefault(reg, dataDir)
	}
	cfg, err := config.Load(file, reg)
	if err != nil {
		return nil, err
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	return cfg, nil
}

func runCmd(e *env) *cobra.Command {
	var file, dataDir, cpuProfile string
	var debugPprof bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline (the embedded default when no config file is given)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := e.logger()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if cpuProfile != "" {
				stopProfile, err := startCPUProfile(cpuProfile)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				defer stopProfile()
			}
			reg := components.Builtin()
			cfg, err := loadConfig(reg, file, dataDir)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			limit, from := pipeline.SetMemoryLimit(cfg.Limits)
			log.Info("memory limit", "budget", int64(cfg.Limits.Memory), "gomemlimit", limit, "from", from)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p, err := pipeline.New(cfg, pipeline.Options{Log: log, Registry: reg, Version: version()})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if err := p.Start(ctx); err != nil {
				return &exitError{code: 1, err: err}
			}
			var adm *admin.Server
			if cfg.Admin.Address != "" {
				adm = admin.New(cfg.Admin, p.Metrics(), p.Ready, log)
				dlq.NewAPI(p.Stream(), p.Metrics(), log).Mount(adm)
				adm.Handle("GET "+PathStatus, statusHandler(p))
				if debugPprof {
					mountPprof(adm)
				}
				if err := adm.Start(); err != nil {
					shutdown(p, nil, cfg)
					return &exitError{code: 1, err: err}
				}
			}
			printBanner(e, cfg, p, adm)
			log.Info("vigil running", "version", version(), "data_dir", cfg.DataDir, "role", cfg.Role)
			<-ctx.Done()
			stop()
			log.Info("shutting down", "deadline", cfg.ShutdownTimeout)
			if err := shutdown(p, adm, cfg); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("shutdown: %w", err)}
			}
			log.Info("stopped cleanly")
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file (default: the embedded default)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (overrides data_dir; default ./vigil-data)")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file when Vigil stops")
	cmd.Flags().BoolVar(&debugPprof, "pprof", false, "serve Go's profiles (heap, goroutines, CPU) under /debug/pprof/ on the admin address, behind admin.token when set")
	return cmd
}

// mountPprof serves net/http/pprof's handlers on the admin server (--pprof): a heap
// profile taken while Vigil is under load shows what holds its memory.
func mountPprof(adm *admin.Server) {
	adm.Handle("GET /debug/pprof/", http.HandlerFunc(httppprof.Index))
	adm.Handle("GET /debug/pprof/cmdline", http.HandlerFunc(httppprof.Cmdline))
	adm.Handle("GET /debug/pprof/profile", http.HandlerFunc(httppprof.Profile))
	adm.Handle("GET /debug/pprof/symbol", http.HandlerFunc(httppprof.Symbol))
	adm.Handle("GET /debug/pprof/trace", http.HandlerFunc(httppprof.Trace))
}

// startCPUProfile profiles the process into path until the returned function is
// called (the peer benchmark's profile of where Vigil's time goes).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func shutdown(p *pipeline.Pipeline, adm *admin.Server, cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err := p.Stop(ctx)
	if adm != nil {
		_ = adm.Stop(ctx)
	}
	return err
}

// printBanner says, in a few plain lines, where Vigil listens and where data goes.
func printBanner(e *env, cfg *config.Config, p *pipeline.Pipeline, adm *admin.Server) {
	w := e.stdout
	fmt.Fprintf(w, "Vigil %s is running (role %s).\n", version(), cfg.Role)
	if p.Stream().Embedded() {
		abs, _ := filepath.Abs(filepath.Join(cfg.DataDir, "stream"))
		fmt.Fprintf(w, "  stream:   embedded JetStream in %s (sync %s)\n", abs, cfg.Buffer.Sync)
		if addr := p.Stream().ListenAddr(); addr != "" {
			fmt.Fprintf(w, "  nats:     %s for other nodes (%s)\n", addr, listenSecurity(cfg.Buffer))
		}
	} else {
		fmt.Fprintf(w, "  stream:   NATS at %s\n", strings.Join(config.RedactURLs(cfg.Buffer.URLs), ", "))
	}
	var curlURL string
	for name, src := range p.Sources() {
		fmt.Fprintf(w, "  source:   %s\n", src.Describe())
		if h, ok := src.(*httpsource.Source); ok && curlURL == "" {
			dataset := name
			if cfg.Embedded {
				dataset = "myapp"
			}
			curlURL = fmt.Sprintf("http://%s/v1/events/%s", h.Addr(), dataset)
		}
	}
	for _, snk := range p.Sinks() {
		desc := snk.Describe()
		if a, ok := snk.(*archivesink.Sink); ok {
			abs, _ := filepath.Abs(a.Path())
			desc = "file_archive to " + abs
		}
		fmt.Fprintf(w, "  sink:     %s\n", desc)
	}
	if adm != nil {
		auth := " (no token: loopback only)"
		if cfg.Admin.Token != "" {
			auth = " (bearer token: admin.token)"
		}
		fmt.Fprintf(w, "  admin:    http://%s/metrics  /healthz  /readyz  /v1/dlq  /v1/status%s\n", adm.Addr(), auth)
	}
	if curlURL != "" && cfg.Embedded {
		fmt.Fprintf(w, "Send a test event:\n  curl -s -H 'Content-Type: application/json' -d '{\"message\":\"hello from curl\"}' %s\n", curlURL)
		fmt.Fprintf(w, "  logger --server 127.0.0.1 --port 5514 --tcp --rfc5424 'hello from logger'\n")
	}
}

// listenSecurity says how buffer.listen is protected.
func listenSecurity(b config.Buffer) string {
	var parts []string
	if b.ListenAuth.User != "" {
		parts = append(parts, "user "+b.ListenAuth.User)
	}
	if b.ListenAuth.NKey != "" {
		parts = append(parts, "nkey")
	}
	if len(parts) == 0 {
		parts = append(parts, "no authentication")
	}
	if b.ListenTLS.CertFile != "" {
		parts = append(parts, "TLS")
	} else {
		parts = append(parts, "no TLS")
	}
	return strings.Join(parts, ", ")
}
