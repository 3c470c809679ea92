package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/processors"
)

func validateCmd(e *env) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config file and print every problem with file:line:column",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if file == "" {
				return &exitError{code: 2, err: errors.New("validate: -c FILE is required")}
			}
			cfg, err := config.Load(file, components.Builtin())
			if err != nil {
				var ps config.Problems
				if errors.As(err, &ps) {
					for _, p := range ps {
						fmt.Fprintln(e.stderr, p.String())
					}
					n := "problems"
					if len(ps) == 1 {
						n = "problem"
					}
					return &exitError{code: 1, err: fmt.Errorf("%s: %d %s", file, len(ps), n)}
				}
				return &exitError{code: 1, err: err}
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintln(e.stderr, "warning: "+w.String())
			}
			// Build every processor once too: a schema file that does not compile is a
			// config problem, found here rather than at start.
			reg := components.Builtin()
			if _, err := process.NewChain(processors.Configured(cfg), reg.Processor, process.Deps{}, nil); err != nil {
				fmt.Fprintf(e.stderr, "%s: %v\n", file, err)
				return &exitError{code: 1, err: fmt.Errorf("%s: 1 problem", file)}
			}
			fmt.Fprintf(e.stdout, "%s: valid (%d sources, %d processors, %d sinks, buffer %s, role %s)\n",
				file, len(cfg.Sources), len(cfg.Processing.Processors), len(cfg.Sinks), cfg.Buffer.Type, cfg.Role)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file to check")
	return cmd
}
