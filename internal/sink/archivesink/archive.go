package archivesink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/component"
)

// Sink writes event batches to gzip NDJSON files.
//
// Exactly-once files: a file's name is <min-seq>-<max-seq> of the batches it holds,
// and before the file is renamed into place a journal line listing those sequences is
// fsynced. On start, journal lines whose file exists mark batches already archived:
// a redelivery of one of them is acknowledged without writing it again, so a crash
// between rename and acknowledgement duplicates nothing. Journal lines without their
// file are discarded (the batches were not archived and will be redelivered).
type Sink struct {
	cfg      Config
	name     string
	log      *slog.Logger
	counters *component.Counters

	mu      sync.Mutex
	open    map[string]*file // by dataset
	written map[string]map[uint64]bool
	journal *os.File
	started time.Time
	stopped bool

	stopTicker chan struct{}
	wg         sync.WaitGroup

	// testHook, when set, is called just before each step of a rotation that
	// changes what a restart finds: "journal", "rename", "acknowledge". Tests panic
	// in it to crash the sink there.
	testHook func(step string)
}

var _ component.Sink = (*Sink)(nil)

type file struct {
	dataset string
	tmp     string
	f       *os.File
	bw      *bufio.Writer
	gz      *gzip.Writer
	opened  time.Time
	first   time.Time // stream time of the first batch: names the hour directory
	size    int
	events  int
	batches []*component.Batch
}

// New returns an archive sink.
func New(cfg *Config, deps component.SinkDeps) *Sink {
	c := *cfg
	if c.Path == "" {
		c.Path = filepath.Join(deps.DataDir, "archive")
	}
	return &Sink{cfg: c, name: deps.Name, log: deps.Log, counters: deps.Metrics.For("sink", deps.Name),
		open: map[string]*file{}, written: map[string]map[uint64]bool{}}
}

// Describe implements component.Sink.
func (s *Sink) Describe() string { return "file_archive to " + s.cfg.Path }

// Path is the archive root.
func (s *Sink) Path() string { return s.cfg.Path }

func (s *Sink) tmpDir() string      { return filepath.Join(s.cfg.Path, ".tmp") }
func (s *Sink) journalPath() string { return filepath.Join(s.cfg.Path, ".journal", s.name) }

// Start implements component.Sink.
func (s *Sink) Start(context.Context) error {
	if err := os.MkdirAll(s.tmpDir(), 0o750); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.journalPath()), 0o750); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	// Leftovers of a crash mid-write hold nothing acknowledged: their batches will be
	// redelivered.
	if tmps, err := filepath.Glob(filepath.Join(s.tmpDir(), s.name+"-*.tmp")); err == nil {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	if err := s.loadJournal(); err != nil {
		return err
	}
	s.started = time.Now()
	s.stopTicker = make(chan struct{})
	s.wg.Go(s.tick)
	return nil
}

// journal line: <unix-seconds> <dataset> <relative file> <seq>,<seq>,...
func (s *Sink) loadJournal() error {
	data, err := os.ReadFile(s.journalPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("archive: journal: %w", err)
	}
	var keep []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 4 {
			continue // a torn last line from a crash
		}
		if _, err := os.Stat(filepath.Join(s.cfg.Path, fields[2])); err != nil {
			continue // renamed never happened: not archived
		}
		set := s.written[fields[1]]
		if set == nil {
			set = map[uint64]bool{}
			s.written[fields[1]] = set
		}
		for _, q := range strings.Split(fields[3], ",") {
			if n, err := strconv.ParseUint(q, 10, 64); err == nil {
				set[n] = true
			}
		}
		keep = append(keep, line)
	}
	// Rewrite the journal with the valid lines only.
	tmp := s.journalPath() + ".new"
	content := strings.Join(keep, "\n")
	if content != "" {
		content += "\n"
	}
	if err := writeFileSync(tmp, []byte(content)); err != nil {
		return fmt.Errorf("archive: journal: %w", err)
	}
	if err := os.Rename(tmp, s.journalPath()); err != nil {
		return fmt.Errorf("archive: journal: %w", err)
	}
	j, err := os.OpenFile(s.journalPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("archive: journal: %w", err)
	}
	s.journal = j
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Consume implements component.Sink.
func (s *Sink) Consume(_ context.Context, b *component.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("archive: stopped")
	}
	if s.written[b.Dataset][b.Seq] {
		s.counters.Discarded("already_archived", b.Count)
		b.Done(nil)
		return nil
	}
	f := s.open[b.Dataset]
	if f == nil {
		var err error
		if f, err = s.create(b); err != nil {
			s.counters.Error("write")
			b.Done(err)
			return nil
		}
		s.open[b.Dataset] = f
	}
	if _, err := f.gz.Write(b.Docs); err != nil {
		s.fail(f, err)
		b.Done(err)
		return nil
	}
	f.size += len(b.Docs)
	f.events += b.Count
	f.batches = append(f.batches, b)
	if f.size >= int(s.cfg.MaxBytes) {
		s.rotate(f)
	}
	return nil
}

func (s *Sink) create(b *component.Batch) (*file, error) {
	tmp := filepath.Join(s.tmpDir(), fmt.Sprintf("%s-%s-%d.tmp", s.name, b.Dataset, b.Seq))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	gz, err := gzip.NewWriterLevel(bw, s.cfg.CompressionLevel)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &file{dataset: b.Dataset, tmp: tmp, f: f, bw: bw, gz: gz, opened: time.Now(), first: b.Time}, nil
}

// fail discards an open file after a write error; its batches are redelivered.
func (s *Sink) fail(f *file, err error) {
	s.counters.Error("write")
	s.log.Error("archive: write failed; batches will be redelivered", "sink", s.name, "file", f.tmp, "err", err)
	f.f.Close()
	_ = os.Remove(f.tmp)
	delete(s.open, f.dataset)
	for _, b := range f.batches {
		b.Done(err)
	}
}

// rotate closes, syncs and renames f, journals it, then acknowledges its batches.
func (s *Sink) rotate(f *file) {
	delete(s.open, f.dataset)
	seqs := make([]uint64, 0, len(f.batches))
	for _, b := range f.batches {
		seqs = append(seqs, b.Seq)
	}
	slices.Sort(seqs)
	rel := filepath.Join(f.dataset, f.first.UTC().Format("2006/01/02/15"),
		fmt.Sprintf("%d-%d.ndjson.gz", seqs[0], seqs[len(seqs)-1]))
	err := s.finish(f, rel, seqs)
	if err != nil {
		s.fail(f, err)
		return
	}
	s.crashPoint("acknowledge")
	set := s.written[f.dataset]
	if set == nil {
		set = map[uint64]bool{}
		s.written[f.dataset] = set
	}
	for _, q := range seqs {
		set[q] = true
	}
	for _, b := range f.batches {
		b.Done(nil)
	}
	s.counters.Sent(f.events, f.size)
}

func (s *Sink) finish(f *file, rel string, seqs []uint64) error {
	if err := f.gz.Close(); err != nil {
		return err
	}
	if err := f.bw.Flush(); err != nil {
		return err
	}
	if err := f.f.Sync(); err != nil {
		return err
	}
	if err := f.f.Close(); err != nil {
		return err
	}
	final := filepath.Join(s.cfg.Path, rel)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	// Journal first: a journal line whose file is missing is ignored on start, while
	// a file without its journal line could be written again under another name.
	var line strings.Builder
	fmt.Fprintf(&line, "%d %s %s ", time.Now().Unix(), f.dataset, rel)
	for i, q := range seqs {
		if i > 0 {
			line.WriteByte(',')
		}
		line.WriteString(strconv.FormatUint(q, 10))
	}
	line.WriteByte('\n')
	s.crashPoint("journal")
	if _, err := io.WriteString(s.journal, line.String()); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	s.crashPoint("rename")
	if err := os.Rename(f.tmp, final); err != nil {
		return err
	}
	return syncDir(dir)
}

func (s *Sink) crashPoint(step string) {
	if s.testHook != nil {
		s.testHook(step)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Sink) tick() {
	period := min(s.cfg.MaxAge/4, time.Second)
	t := time.NewTicker(max(period, 25*time.Millisecond))
	defer t.Stop()
	compacted := false
	for {
		select {
		case <-s.stopTicker:
			return
		case <-t.C:
		}
		s.mu.Lock()
		for _, f := range s.open {
			if time.Since(f.opened) >= s.cfg.MaxAge {
				s.rotate(f)
			}
		}
		if !compacted && time.Since(s.started) > 10*time.Minute {
			s.compactJournal()
			compacted = true
		}
		s.mu.Unlock()
	}
}

// compactJournal drops the lines written before this process started: any batch of
// theirs that was not acknowledged has long been redelivered by now (ack_wait).
func (s *Sink) compactJournal() {
	data, err := os.ReadFile(s.journalPath())
	if err != nil {
		return
	}
	var keep []string
	s.written = map[string]map[uint64]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 4 {
			continue
		}
		ts, _ := strconv.ParseInt(fields[0], 10, 64)
		if time.Unix(ts, 0).Before(s.started.Add(-time.Second)) {
			continue
		}
		keep = append(keep, line)
		set := s.written[fields[1]]
		if set == nil {
			set = map[uint64]bool{}
			s.written[fields[1]] = set
		}
		for _, q := range strings.Split(fields[3], ",") {
			if n, err := strconv.ParseUint(q, 10, 64); err == nil {
				set[n] = true
			}
		}
	}
	content := strings.Join(keep, "\n")
	if content != "" {
		content += "\n"
	}
	tmp := s.journalPath() + ".new"
	if err := writeFileSync(tmp, []byte(content)); err != nil {
		s.log.Warn("archive: journal compaction failed", "err", err)
		return
	}
	s.journal.Close()
	if err := os.Rename(tmp, s.journalPath()); err != nil {
		s.log.Warn("archive: journal compaction failed", "err", err)
	}
	j, err := os.OpenFile(s.journalPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		s.log.Error("archive: journal reopen failed", "err", err)
		return
	}
	s.journal = j
}

// Stop implements component.Sink: every open file is finished and its batches
// acknowledged.
func (s *Sink) Stop(context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	for _, f := range s.open {
		s.rotate(f)
	}
	s.mu.Unlock()
	if s.stopTicker != nil {
		close(s.stopTicker)
		s.wg.Wait()
	}
	if s.journal != nil {
		return s.journal.Close()
	}
	return nil
}
