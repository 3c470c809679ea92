package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/internal/awsconf"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/s3source"
)

// backfillOpts are the flags of `vigil backfill`.
type backfillOpts struct {
	file, dataDir, format, since, until, source, endpoint, region string
	noWait                                                        bool
}

func backfillCmd(e *env) *cobra.Command {
	var o backfillOpts
	cmd := &cobra.Command{
		Use:   "backfill s3://bucket/prefix",
		Short: "Ingest the S3 objects already under a prefix (resumable)",
		Long: `Backfill lists the objects under s3://bucket/prefix and ingests each one as the s3
source would: the key rules choose its format (or --format for all), its lines are
stored in the intake stream, then processed and delivered to the configured sinks.

It opens the node's data directory like "vigil run" does (the embedded stream is
the node's own, so stop a running node first, or use buffer type nats to run both),
runs processing and the sinks but no sources, and waits until what it stored is
delivered. Objects done are recorded in <data_dir>/backfill/; running the same
command again continues where it stopped. Records are stored under message IDs
derived from each object's key and ETag, so an object read twice is stored once.

The AWS settings and key rules come from the config's s3 source (--source, or the
only one), else from --endpoint and --region with the AWS default credential chain.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runBackfill(e, o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "config", "c", "", "config file (default: the embedded default)")
	f.StringVar(&o.dataDir, "data-dir", "", "data directory (overrides data_dir; default ./vigil-data)")
	f.StringVar(&o.format, "format", "", "read every object with this format instead of the key rules")
	f.StringVar(&o.since, "since", "", "only objects last modified at or after this date (2006-01-02 or RFC 3339)")
	f.StringVar(&o.until, "until", "", "only objects last modified before this date (2006-01-02 or RFC 3339)")
	f.StringVar(&o.source, "source", "", "the config's s3 source whose settings, rules and name to use")
	f.StringVar(&o.endpoint, "endpoint", "", "S3 endpoint URL (S3-compatible servers; overrides the source's)")
	f.StringVar(&o.region, "region", "", "AWS region (overrides the source's; default us-east-1)")
	f.BoolVar(&o.noWait, "no-wait", false, "exit once stored, without waiting for delivery (the next run delivers the rest)")
	return cmd
}

func parseDate(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--%s: want a date like 2026-01-02 or 2026-01-02T15:04:05Z, got %q", flag, v)
}

func runBackfill(e *env, o backfillOpts, target string) error {
	usage := func(err error) error { return &exitError{code: 2, err: err} }
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return usage(fmt.Errorf("want s3://bucket/prefix, got %q", target))
	}
	bucket, prefix := u.Host, strings.TrimPrefix(u.Path, "/")
	since, err := parseDate("since", o.since)
	if err != nil {
		return usage(err)
	}
	until, err := parseDate("until", o.until)
	if err != nil {
		return usage(err)
	}
	log, err := e.logger()
	if err != nil {
		return usage(err)
	}
	reg := components.Builtin()
	cfg, err := loadConfig(reg, o.file, o.dataDir)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	name, s3cfg, srcFormat, err := backfillSource(cfg, o.source)
	if err != nil {
		return usage(err)
	}
	if o.endpoint != "" {
		s3cfg.Endpoint = o.endpoint
	}
	if o.region != "" {
		s3cfg.Region = o.region
	}
	if err := s3cfg.ClientConfig.Validate(); err != nil {
		return usage(err)
	}
	if o.format != "" {
		if _, ok := reg.Format(o.format); !ok {
			return usage(fmt.Errorf("--format: unknown format %q; known formats: %s", o.format, strings.Join(reg.FormatNames(), ", ")))
		}
		srcFormat = o.format
		s3cfg.KeyRules, s3cfg.BuiltinKeyRules = nil, false
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Registry: reg, Version: version(), NoSources: true})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if err := p.Start(ctx); err != nil {
		return &exitError{code: 1, err: err}
	}
	defer shutdown(p, nil, cfg)

	reader, err := s3source.NewReader(s3cfg, srcFormat, p.SourceCounters(name), log.With("backfill", target))
	if err != nil {
		return usage(err)
	}
	reader.Intake = p.Intake(name, srcFormat)
	reader.Whole = func(f string) bool { fm, ok := reg.Format(f); return ok && fm.WholeRecord }
	// Its own transport, whose idle connections end with the command.
	hc, closeIdle := awsconf.HTTPClient()
	defer closeIdle()
	awsCfg, err := s3cfg.Load(ctx, awsconfig.WithHTTPClient(hc))
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	reader.S3 = s3.NewFromConfig(awsCfg, s3cfg.S3Options)

	ck, err := openCheckpoint(cfg.DataDir, target+"\x00"+o.format)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer ck.Close()

	var todo []s3source.ObjectRef
	var todoBytes int64
	already := 0
	pages := s3.NewListObjectsV2Paginator(reader.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("listing %s: %w", target, err)}
		}
		for _, obj := range page.Contents {
			mod := aws.ToTime(obj.LastModified)
			if (!since.IsZero() && mod.Before(since)) || (!until.IsZero() && !mod.Before(until)) {
				continue
			}
			ref := s3source.ObjectRef{Bucket: bucket, Key: aws.ToString(obj.Key), Size: aws.ToInt64(obj.Size),
				ETag: strings.Trim(aws.ToString(obj.ETag), `"`)}
			if ck.done(ref) {
				already++
				continue
			}
			todo = append(todo, ref)
			todoBytes += ref.Size
		}
	}
	fmt.Fprintf(e.stderr, "backfill: %d object(s) to ingest (%s), %d already done by an earlier run\n", len(todo), humanBytes(todoBytes), already)

	prog := newProgress(e.stderr, len(todo), todoBytes)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	slots := make(chan struct{}, s3cfg.MaxInFlight)
	for _, ref := range todo {
		if ctx.Err() != nil {
			break
		}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			err := reader.Ingest(ctx, ref)
			if err == nil {
				err = ck.add(ref)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			prog.add(ref.Size)
		}()
	}
	wg.Wait()
	prog.finish()
	st := &reader.Stats
	fmt.Fprintf(e.stdout, "Backfilled %d object(s), %d record(s) stored", st.Objects.Load(), st.Records.Load())
	if n := st.Skipped.Load() + st.Missing.Load() + st.DeadLettered.Load(); n > 0 {
		fmt.Fprintf(e.stdout, "; %d skipped by a rule, %d gone, %d dead-lettered", st.Skipped.Load(), st.Missing.Load(), st.DeadLettered.Load())
	}
	fmt.Fprintln(e.stdout, ".")
	switch {
	case firstErr != nil:
		return &exitError{code: 1, err: fmt.Errorf("%w; run the same command again to continue (nothing is stored twice)", firstErr)}
	case ctx.Err() != nil:
		return &exitError{code: 1, err: errors.New("interrupted; run the same command again to continue (nothing is stored twice)")}
	}
	if !o.noWait {
		fmt.Fprintln(e.stderr, "backfill: waiting for processing and the sinks to deliver what was stored (Ctrl-C to leave it to the next run)")
		if err := p.WaitDrained(ctx); err != nil {
			return &exitError{code: 1, err: errors.New("interrupted before delivery; the stored records are delivered by the next run on this data directory")}
		}
	}
	return nil
}

// backfillSource picks the config's s3 source (named, or the only one) for its
// settings, rules, format and name; with none, the defaults under the name
// "backfill" and format auto.
func backfillSource(cfg *config.Config, name string) (string, *s3source.Config, string, error) {
	var found []*config.Source
	for _, sc := range cfg.Sources {
		if sc.Type == "s3" && (name == "" || sc.Name == name) {
			found = append(found, sc)
		}
	}
	switch {
	case name != "" && len(found) == 0:
		return "", nil, "", fmt.Errorf("--source: no s3 source named %q in the config", name)
	case len(found) > 1:
		return "", nil, "", fmt.Errorf("--source: the config has %d s3 sources; name one", len(found))
	case len(found) == 1:
		c := *found[0].Settings.(*s3source.Config)
		return found[0].Name, &c, found[0].Format, nil
	}
	return "backfill", s3source.NewConfig(), s3source.FormatAuto, nil
}

// checkpoint is the resumable record of a backfill: one line per object done, its
// key and ETag, appended and synced after the object is stored.
type checkpoint struct {
	f    *os.File
	mu   sync.Mutex
	seen map[string]bool
}

func openCheckpoint(dataDir, id string) (*checkpoint, error) {
	sum := sha256.Sum256([]byte(id))
	dir := filepath.Join(dataDir, "backfill")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("backfill checkpoint: %w", err)
	}
	name := filepath.Join(dir, hex.EncodeToString(sum[:8])+".done")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("backfill checkpoint: %w", err)
	}
	ck := &checkpoint{f: f, seen: map[string]bool{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ck.seen[sc.Text()] = true // a torn last line matches nothing: that object is read again
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("backfill checkpoint %s: %w", name, err)
	}
	return ck, nil
}

func ckLine(ref s3source.ObjectRef) string {
	return strings.NewReplacer("\n", "%0A", "\t", "%09").Replace(ref.Key) + "\t" + ref.ETag
}

func (c *checkpoint) done(ref s3source.ObjectRef) bool { return c.seen[ckLine(ref)] }

func (c *checkpoint) add(ref s3source.ObjectRef) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.f, ckLine(ref)+"\n"); err != nil {
		return fmt.Errorf("backfill checkpoint: %w", err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("backfill checkpoint: %w", err)
	}
	return nil
}

func (c *checkpoint) Close() error { return c.f.Close() }

// progress is a bar on a terminal and a plain line every few seconds otherwise.
type progress struct {
	w          io.Writer
	bar        *progressbar.ProgressBar
	total      int
	totalBytes int64
	n          int
	bytes      int64
	last       time.Time
}

func newProgress(w io.Writer, total int, totalBytes int64) *progress {
	p := &progress{w: w, total: total, totalBytes: totalBytes, last: time.Now()}
	if isTerminal(w) && total > 0 {
		p.bar = progressbar.NewOptions64(totalBytes, progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("backfill"), progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	}
	return p
}

// add counts one object done; the caller serialises calls.
func (p *progress) add(size int64) {
	p.n++
	p.bytes += size
	if p.bar != nil {
		_ = p.bar.Add64(size)
		return
	}
	if time.Since(p.last) >= 5*time.Second || p.n == p.total {
		p.last = time.Now()
		fmt.Fprintf(p.w, "backfill: %d/%d objects, %s/%s\n", p.n, p.total, humanBytes(p.bytes), humanBytes(p.totalBytes))
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
