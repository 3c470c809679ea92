package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/processors"
)

// maxParseInput bounds one whole-file record read by `vigil parse`.
const maxParseInput = 1 << 30

func parseCmd(e *env) *cobra.Command {
	var format, dataset, cfgFile, sourceName string
	var noOriginal bool
	cmd := &cobra.Command{
		Use:   "parse (--format FORMAT | -c FILE --source NAME) [FILE...]",
		Short: "Parse log files (or stdin) into ECS JSON, one document per line",
		Long: "parse runs the same parser and normalization as the pipeline on local files or stdin " +
			"(gzip detected by its magic bytes) and prints one ECS JSON document per line. Records that " +
			"cannot be parsed are reported on stderr as FILE:LINE: reason, and the exit status is 1.\n\n" +
			"With -c FILE it also runs the config's processors, so you can see what a config does to a log " +
			"file: dropped events are counted on stderr, rejected ones reported like parse errors. " +
			"--source NAME takes the format, format options, dataset and keep_original of that source.",
		RunE: func(_ *cobra.Command, files []string) error {
			reg := components.Builtin()
			var cfg *config.Config
			var src *config.Source
			if cfgFile != "" {
				c, err := config.Load(cfgFile, reg)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				cfg = c
			}
			if sourceName != "" {
				if cfg == nil {
					return &exitError{code: 2, err: errors.New("--source needs -c FILE")}
				}
				s, ok := cfg.Source(sourceName)
				if !ok {
					return &exitError{code: 2, err: fmt.Errorf("--source: %s has no source %q", cfgFile, sourceName)}
				}
				src = s
				if format == "" {
					format = s.Format
				}
			}
			if format == "" {
				return &exitError{code: 2, err: errors.New("--format is required (or -c FILE with --source NAME)")}
			}
			f, ok := reg.Format(format)
			if !ok {
				return &exitError{code: 2, err: fmt.Errorf("--format: unknown format %q; known formats: %v", format, reg.FormatNames())}
			}
			if dataset != "" && !config.ValidDataset(dataset) {
				return &exitError{code: 2, err: fmt.Errorf("--dataset: %q is not a valid dataset name", dataset)}
			}
			opts := f.NewConfig()
			keep, sourceDataset := !noOriginal, ""
			if src != nil {
				if src.Format == format && src.FormatOptions != nil {
					opts = src.FormatOptions
				}
				keep = src.KeepOriginal && !noOriginal
				sourceDataset = src.Dataset
			}
			parser, err := f.New(opts)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			n := &process.Normalizer{Source: "parse", FormatDataset: f.Dataset, Dataset: format, KeepOriginal: keep,
				Parser: parser, AgentVersion: version()}
			if src != nil {
				n.Source = src.Name
				if sourceDataset != "" {
					n.Dataset = sourceDataset
				}
			}
			if cfg != nil {
				chain, err := process.NewChain(processors.Configured(cfg), reg.Processor, process.Deps{}, nil)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				n.Chain = chain
			}
			out := bufio.NewWriterSize(e.stdout, 256<<10)
			defer out.Flush()
			pw := &parseWriter{w: out, errw: e.stderr}
			if len(files) == 0 {
				files = []string{"-"}
			}
			for i, name := range files {
				if err := parseOne(n, pw, name, uint64(i+1), f.WholeRecord, dataset, e.stdin); err != nil {
					out.Flush()
					return &exitError{code: 1, err: err}
				}
			}
			if err := out.Flush(); err != nil {
				return &exitError{code: 1, err: err}
			}
			if len(pw.skipped) > 0 {
				fmt.Fprintf(e.stderr, "discarded: %s\n", pw.skippedSummary())
			}
			if pw.failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d record(s) could not be parsed or were rejected", pw.failed)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfgFile, "config", "c", "", "also run this config's processors")
	cmd.Flags().StringVar(&sourceName, "source", "", "with -c: parse as this source of the config (its format, options and dataset)")
	cmd.Flags().StringVarP(&format, "format", "f", "", "format of the input (json, ndjson, lines, alb, cloudfront, vpcflow, apache, nginx, syslog, cloudtrail, cloudwatch_logs)")
	cmd.Flags().StringVar(&dataset, "dataset", "", "override event.dataset")
	cmd.Flags().BoolVar(&noOriginal, "no-original", false, "leave out event.original")
	return cmd
}

// parseWriter is the process.Output of `vigil parse`.
type parseWriter struct {
	w      *bufio.Writer
	errw   io.Writer
	file   string
	line   int
	failed int
	err    error
	// skipped counts deliberately discarded events by reason.
	skipped map[string]int
}

func (p *parseWriter) Event(_ string, doc []byte) error {
	p.w.Write(doc)
	if err := p.w.WriteByte('\n'); err != nil {
		p.err = err
		return err
	}
	return nil
}

func (p *parseWriter) Reject(part int, _ []byte, reason error) {
	p.failed++
	fmt.Fprintf(p.errw, "%s:%d: %v\n", p.file, p.line, reason)
}

func (p *parseWriter) Skip(reason string) {
	if p.skipped == nil {
		p.skipped = map[string]int{}
	}
	p.skipped[reason]++
}

// skippedSummary reads "drop:debug 12, blank_line 1", largest first.
func (p *parseWriter) skippedSummary() string {
	reasons := make([]string, 0, len(p.skipped))
	for r := range p.skipped {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		if c := cmp.Compare(p.skipped[b], p.skipped[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, p.skipped[r])
	}
	return strings.Join(parts, ", ")
}

// parseOne parses one file ("-" is stdin) record by record.
func parseOne(n *process.Normalizer, pw *parseWriter, name string, seq uint64, whole bool, dataset string, stdin io.Reader) error {
	var r io.Reader = stdin
	display := "<stdin>"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r, display = f, name
	}
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", display, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	pw.file = display
	received := time.Now()
	handle := func(line int, rec []byte) error {
		pw.line = line
		origin := event.Origin{Seq: seq, Index: uint32(line)}
		_, err := n.Process(process.Record{Data: rec, Origin: origin, Received: received, Dataset: dataset}, pw)
		if pw.err != nil {
			return pw.err
		}
		if err != nil {
			pw.failed++
			fmt.Fprintf(pw.errw, "%s:%d: %v\n", display, line, err)
		}
		return nil
	}
	if whole {
		data, err := io.ReadAll(io.LimitReader(br, maxParseInput+1))
		if err != nil {
			return fmt.Errorf("%s: %w", display, err)
		}
		if len(data) > maxParseInput {
			return fmt.Errorf("%s: larger than 1 GiB", display)
		}
		return handle(1, data)
	}
	for line := 1; ; line++ {
		rec, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: collect it whole.
			long := append([]byte(nil), rec...)
			for errors.Is(err, bufio.ErrBufferFull) {
				rec, err = br.ReadSlice('\n')
				long = append(long, rec...)
			}
			rec = long
		}
		if len(rec) > 0 {
			rec = bytes.TrimRight(rec, "\r\n")
			if len(rec) > 0 {
				if herr := handle(line, rec); herr != nil {
					return herr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", display, line, err)
		}
	}
}
