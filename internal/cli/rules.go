package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/detect/sigma"
)

func rulesCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check and test Sigma detection rules",
	}
	cmd.AddCommand(rulesCheckCmd(e), rulesTestCmd(e))
	return cmd
}

func rulesCheckCmd(e *env) *cobra.Command {
	var fieldMapping string
	cmd := &cobra.Command{
		Use:   "check PATH...",
		Short: "Load Sigma rules the way the sigma processor does and print every problem as file:line",
		Long: "check loads the rule files that each PATH names (a file, a directory, or a glob where ** spans directories) " +
			"and compiles them. Every rule that cannot be loaded is reported on stderr as FILE:LINE: problem, such as " +
			"\"unsupported feature modifier expand\", and the exit status is 1. Otherwise it prints \"N rules loaded\".",
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			fm, err := sigma.LoadFieldMapping(fieldMapping)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--field-mapping: %w", err)}
			}
			files, err := sigma.ExpandPatterns(args)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var rules []*sigma.Rule
			var problems sigma.Problems
			for _, f := range files {
				rs, ps := sigma.ParseFile(f)
				rules = append(rules, rs...)
				problems = append(problems, ps...)
			}
			if problems == nil {
				if _, err := sigma.Compile(rules, fm); err != nil {
					var ps sigma.Problems
					if !errors.As(err, &ps) {
						return &exitError{code: 1, err: err}
					}
					problems = ps
				}
			}
			if problems != nil {
				for _, p := range problems {
					fmt.Fprintln(e.stderr, p.String())
				}
				return &exitError{code: 1, err: fmt.Errorf("%d of %d rule files have problems", countFiles(problems), len(files))}
			}
			fmt.Fprintf(e.stdout, "%d rules loaded\n", len(rules))
			return nil
		},
	}
	cmd.Flags().StringVar(&fieldMapping, "field-mapping", "builtin", "field mapping: builtin or a YAML file")
	return cmd
}

func countFiles(ps sigma.Problems) int {
	seen := map[string]bool{}
	for _, p := range ps {
		seen[p.File] = true
	}
	return len(seen)
}

func rulesTestCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "test DIR|FILE...",
		Short: "Run rule tests: events in, expected alerts out",
		Long: "test runs the rule test files (YAML) below each DIR: each names rule_files and lists tests, with events " +
			"(flat ECS fields) or format and records (raw lines run through that parser), and the alerts expected as " +
			"{rule: ID, event: INDEX}. A test passes when exactly those alerts fire. Failures are printed on stderr and " +
			"the exit status is 1. See docs/detection.md.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			reg := components.Builtin()
			passed, failed := 0, 0
			for _, dir := range args {
				results, err := sigma.RunTestFiles(dir, reg.Format)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				for _, r := range results {
					if len(r.Failures) == 0 {
						passed++
						continue
					}
					failed++
					for _, f := range r.Failures {
						fmt.Fprintf(e.stderr, "%s: %s: %s\n", r.File, r.Name, f)
					}
				}
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d rule tests failed", failed, passed+failed)}
			}
			fmt.Fprintf(e.stdout, "%d rule tests passed\n", passed)
			return nil
		},
	}
}
