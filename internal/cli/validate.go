package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/process/validate"
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
			if cfg.Processing.Validate.Enabled {
				// Compile the schemas too: a broken schema file is a config problem.
				if _, err := validate.New(&cfg.Processing.Validate); err != nil {
					fmt.Fprintf(e.stderr, "%s: processing.validate: %v\n", file, err)
					return &exitError{code: 1, err: fmt.Errorf("%s: 1 problem", file)}
				}
			}
			fmt.Fprintf(e.stdout, "%s: valid (%d sources, %d sinks, buffer %s, role %s)\n",
				file, len(cfg.Sources), len(cfg.Sinks), cfg.Buffer.Type, cfg.Role)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file to check")
	return cmd
}
