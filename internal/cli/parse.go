package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
)

// maxParseInput bounds one whole-file record read by `vigil parse`.
const maxParseInput = 1 << 30

func parseCmd(e *env) *cobra.Command {
	var format, dataset string
	var noOriginal bool
	cmd := &cobra.Command{
		Use:   "parse --format FORMAT [FILE...]",
		Short: "Parse log files (or stdin) into ECS JSON, one document per line",
		Long: "parse runs the same parser and normalization as the pipeline on local files or stdin " +
			"(gzip detected by its magic bytes) and prints one ECS JSON document per line. Records that " +
			"cannot be parsed are reported on stderr as FILE:LINE: reason, and the exit status is 1.",
		RunE: func(_ *cobra.Command, files []string) error {
			reg := components.Builtin()
			f, ok := reg.Format(format)
			if !ok {
				return &exitError{code: 2, err: fmt.Errorf("--format: unknown format %q; known formats: %v", format, reg.FormatNames())}
			}
			if dataset != "" && !config.ValidDataset(dataset) {
				return &exitError{code: 2, err: fmt.Errorf("--dataset: %q is not a valid dataset name", dataset)}
			}
			parser, err := f.New(f.NewConfig())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			n := &process.Normalizer{Source: "parse", FormatDataset: f.Dataset, Dataset: format, KeepOriginal: !noOriginal,
				Parser: parser, AgentVersion: version()}
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
			if pw.failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d record(s) could not be parsed", pw.failed)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format of the input (json, ndjson, lines, alb, cloudfront, vpcflow, apache, nginx, syslog, cloudtrail, cloudwatch_logs)")
	cmd.Flags().StringVar(&dataset, "dataset", "", "override event.dataset")
	cmd.Flags().BoolVar(&noOriginal, "no-original", false, "leave out event.original")
	_ = cmd.MarkFlagRequired("format")
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

func (p *parseWriter) Skip(string) {}

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
