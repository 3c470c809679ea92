package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vigil-sec/vigil/bench/corpus"
)

// corpusMain is `bench corpus`: it writes a corpus to a file, for the parser and S3
// scenarios and for looking at what the harness sends.
func corpusMain(args []string) error {
	fs := flag.NewFlagSet("corpus", flag.ContinueOnError)
	mix := fs.String("mix", "syslog", "syslog, syslog_half_bad, ndjson, apache, alb or cloudtrail")
	n := fs.Int("n", 1000, "lines (records, for cloudtrail)")
	seed := fs.Uint64("seed", 1, "seed")
	out := fs.String("o", "", "output file (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var data []byte
	switch *mix {
	case "alb":
		data = corpus.New(*seed).ALBFile(*n)
	case "cloudtrail":
		data = corpus.New(*seed).CloudTrailFile(*n)
	default:
		c, err := corpus.Generate(corpus.Mix(*mix), *seed, *n)
		if err != nil {
			return err
		}
		data = c.Data
	}
	if *out == "" {
		_, err := os.Stdout.Write(data)
		return err
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %d bytes to %s\n", len(data), *out)
	return nil
}
