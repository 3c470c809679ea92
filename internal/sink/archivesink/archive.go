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

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
)

// Sink writes event batches to gzip (or zstd) NDJSON files.
//
// Every batch is a frame of its own (a gzip member, a zstd frame); the files are
// those frames one after another, which gzip and zstd readers read as one stream.
// A batch that crossed the events stream compressed as the archive compresses
// (processing.events_compression) is written as it is (component.FrameSink);
// others are compressed here.
//
// Exactly-once files: a file's name is <epoch>-<min-seq>-<max-seq> of the batches it
// holds (the events stream's epoch, component.Batch.Epoch, and their sequences), and
// before the file is renamed into place a journal line listing those sequences is
// fsynced. On start, journal lines whose file exists mark batches already archived:
// a redelivery of one of them is acknowledged without writing it again, so a crash
// between rename and acknowledgement duplicates nothing. Journal lines without their
// file are discarded (the batches were not archived and will be redelivered).
//
// A recreated events stream numbers its batches from 1 again under a new epoch: the
// journal's records of the former epoch do not match its batches, and its files get
// names no former file has. Prune (called by the runtime with the consumer's
// acknowledgement floor) drops the former epoch's records and those the stream will
// not redeliver, so the journal and its map stay as small as the batches in flight.
type Sink struct {
	cfg      Config
	name     string
	log      *slog.Logger
	counters *component.Counters

	mu      sync.Mutex
	enc     *event.FrameEncoder // compresses the batches that come uncompressed
	zbuf    []byte              // enc's output, reused
	open    map[stretch]*file
	written map[stretch]map[uint64]bool
	lines   []journalLine // the journal's records, in the file's order
	journal *os.File
	stopped bool

	stopTicker chan struct{}
	wg         sync.WaitGroup

	// testHook, when set, is called just before each step of a rotation that
	// changes what a restart finds: "journal", "rename", "acknowledge". Tests panic
	// in it to crash the sink there.
	testHook func(step string)
}

var (
	_ component.Sink      = (*Sink)(nil)
	_ component.Pruner    = (*Sink)(nil)
	_ component.FrameSink = (*Sink)(nil)
)

// stretch is a dataset's batches in one events stream epoch: the batches of one file
// come from one stretch.
type stretch struct {
	epoch   int64
	dataset string
}

// journalLine is one record of the journal.
type journalLine struct {
	stretch
	last uint64 // the highest sequence it lists
	text string // the line, without its '\n'
}

type file struct {
	stretch
	tmp     string
	f       *os.File
	bw      *bufio.Writer
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
		open: map[stretch]*file{}, written: map[stretch]map[uint64]bool{}}
}

// Describe implements component.Sink.
func (s *Sink) Describe() string { return "file_archive to " + s.cfg.Path }

// Path is the archive root.
func (s *Sink) Path() string { return s.cfg.Path }

func (s *Sink) tmpDir() string      { return filepath.Join(s.cfg.Path, ".tmp") }
func (s *Sink) journalPath() string { return filepath.Join(s.cfg.Path, ".journal", s.name) }

// FrameEncoding implements component.FrameSink.
func (s *Sink) FrameEncoding() string { return s.cfg.Compression }

// Start implements component.Sink.
func (s *Sink) Start(context.Context) error {
	enc, err := event.NewFrameEncoder(s.cfg.Compression, s.cfg.CompressionLevel)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	s.enc = enc
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
	s.stopTicker = make(chan struct{})
	s.wg.Go(s.tick)
	return nil
}

// journal line: <unix-seconds> <epoch> <dataset> <relative file> <seq>,<seq>,...
func (s *Sink) loadJournal() error {
	data, err := os.ReadFile(s.journalPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("archive: journal: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// Lines of another shape are torn last lines from a crash, or records of
		// earlier versions that named no epoch and so cannot be told from this one's.
		jl, seqs, ok := parseJournalLine(line)
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.cfg.Path, strings.Fields(line)[3])); err != nil {
			continue // renamed never happened: not archived
		}
		s.remember(jl, seqs)
	}
	// Rewrite the journal with the valid lines only.
	if err := s.rewriteJournal(); err != nil {
		return fmt.Errorf("archive: journal: %w", err)
	}
	return nil
}

func parseJournalLine(line string) (journalLine, []uint64, bool) {
	fields := strings.Fields(line)
	if len(fields) != 5 {
		return journalLine{}, nil, false
	}
	epoch, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return journalLine{}, nil, false
	}
	var seqs []uint64
	for _, q := range strings.Split(fields[4], ",") {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			return journalLine{}, nil, false
		}
		seqs = append(seqs, n)
	}
	return journalLine{stretch: stretch{epoch: epoch, dataset: fields[2]}, last: slices.Max(seqs), text: line}, seqs, true
}

// remember adds a journal record to the lines and the written map.
func (s *Sink) remember(jl journalLine, seqs []uint64) {
	s.lines = append(s.lines, jl)
	set := s.written[jl.stretch]
	if set == nil {
		set = map[uint64]bool{}
		s.written[jl.stretch] = set
	}
	for _, q := range seqs {
		set[q] = true
	}
}

// rewriteJournal replaces the journal with s.lines and opens it for appending.
func (s *Sink) rewriteJournal() error {
	var content strings.Builder
	for _, jl := range s.lines {
		content.WriteString(jl.text)
		content.WriteByte('\n')
	}
	tmp := s.journalPath() + ".new"
	if err := writeFileSync(tmp, []byte(content.String())); err != nil {
		return err
	}
	if s.journal != nil {
		s.journal.Close()
		s.journal = nil
	}
	if err := os.Rename(tmp, s.journalPath()); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(s.journalPath())); err != nil {
		return err
	}
	j, err := os.OpenFile(s.journalPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
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
	at := stretch{epoch: b.Epoch, dataset: b.Dataset}
	if s.written[at][b.Seq] {
		s.counters.Discarded("already_archived", b.Count)
		b.Done(nil)
		return nil
	}
	f := s.open[at]
	if f == nil {
		var err error
		if f, err = s.create(b); err != nil {
			s.counters.Error("write")
			b.Done(err)
			return nil
		}
		s.open[at] = f
	}
	frame := b.Frame
	if frame == nil {
		s.zbuf = s.enc.Append(s.zbuf[:0], b.Docs)
		frame = s.zbuf
	}
	if _, err := f.bw.Write(frame); err != nil {
		s.fail(f, err)
		b.Done(err)
		return nil
	}
	f.size += b.Size
	f.events += b.Count
	// The frame is in the file's buffer now; the batch is kept only to be
	// acknowledged, so its memory goes back at once, to take the next batch, rather
	// than at rotation.
	b.Release()
	f.batches = append(f.batches, b)
	if f.size >= int(s.cfg.MaxBytes) {
		s.rotate(f)
	}
	return nil
}

func (s *Sink) create(b *component.Batch) (*file, error) {
	tmp := filepath.Join(s.tmpDir(), fmt.Sprintf("%s-%s-%d-%d.tmp", s.name, b.Dataset, b.Epoch, b.Seq))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	return &file{stretch: stretch{epoch: b.Epoch, dataset: b.Dataset}, tmp: tmp, f: f, bw: bw, opened: time.Now(), first: b.Time}, nil
}

// extension is the file name's ending for the configured compression.
func (s *Sink) extension() string {
	if s.cfg.Compression == event.EncodingZstd {
		return ".ndjson.zst"
	}
	return ".ndjson.gz"
}

// fail discards an open file after a write error; its batches are redelivered.
func (s *Sink) fail(f *file, err error) {
	s.counters.Error("write")
	s.log.Error("archive: write failed; batches will be redelivered", "sink", s.name, "file", f.tmp, "err", err)
	f.f.Close()
	_ = os.Remove(f.tmp)
	delete(s.open, f.stretch)
	for _, b := range f.batches {
		b.Done(err)
	}
}

// rotate closes, syncs and renames f, journals it, then acknowledges its batches.
func (s *Sink) rotate(f *file) {
	delete(s.open, f.stretch)
	seqs := make([]uint64, 0, len(f.batches))
	for _, b := range f.batches {
		seqs = append(seqs, b.Seq)
	}
	slices.Sort(seqs)
	rel := filepath.Join(f.dataset, f.first.UTC().Format("2006/01/02/15"),
		fmt.Sprintf("%d-%d-%d%s", f.epoch, seqs[0], seqs[len(seqs)-1], s.extension()))
	line, err := s.finish(f, rel, seqs)
	if err != nil {
		s.fail(f, err)
		return
	}
	s.crashPoint("acknowledge")
	s.remember(journalLine{stretch: f.stretch, last: seqs[len(seqs)-1], text: line}, seqs)
	for _, b := range f.batches {
		b.Done(nil)
	}
	s.counters.Sent(f.events, f.size)
}

// finish closes, journals and renames f; it returns the journal line, without its
// '\n'.
func (s *Sink) finish(f *file, rel string, seqs []uint64) (string, error) {
	if err := f.bw.Flush(); err != nil {
		return "", err
	}
	if err := f.f.Sync(); err != nil {
		return "", err
	}
	if err := f.f.Close(); err != nil {
		return "", err
	}
	final := filepath.Join(s.cfg.Path, rel)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	// Journal first: a journal line whose file is missing is ignored on start, while
	// a file without its journal line could be written again under another name.
	var line strings.Builder
	fmt.Fprintf(&line, "%d %d %s %s ", time.Now().Unix(), f.epoch, f.dataset, rel)
	for i, q := range seqs {
		if i > 0 {
			line.WriteByte(',')
		}
		line.WriteString(strconv.FormatUint(q, 10))
	}
	s.crashPoint("journal")
	if s.journal == nil {
		// A compaction failed after closing it: try again.
		if err := s.rewriteJournal(); err != nil {
			return "", fmt.Errorf("journal: %w", err)
		}
	}
	if _, err := io.WriteString(s.journal, line.String()+"\n"); err != nil {
		return "", fmt.Errorf("journal: %w", err)
	}
	if err := s.journal.Sync(); err != nil {
		return "", fmt.Errorf("journal: %w", err)
	}
	s.crashPoint("rename")
	if err := os.Rename(f.tmp, final); err != nil {
		return "", err
	}
	return line.String(), syncDir(dir)
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
		s.mu.Unlock()
	}
}

// Prune implements component.Pruner: it forgets the records of other epochs and of
// batches at or below floor, which the stream will not deliver again, and rewrites
// the journal without them. Files are never touched.
func (s *Sink) Prune(epoch int64, floor uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.stopTicker == nil {
		return // not running
	}
	for at, set := range s.written {
		if at.epoch != epoch {
			delete(s.written, at)
			continue
		}
		for q := range set {
			if q <= floor {
				delete(set, q)
			}
		}
		if len(set) == 0 {
			delete(s.written, at)
		}
	}
	keep := slices.DeleteFunc(slices.Clone(s.lines), func(jl journalLine) bool {
		return jl.epoch != epoch || jl.last <= floor
	})
	if len(keep) == len(s.lines) && s.journal != nil {
		return
	}
	s.lines = keep
	if err := s.rewriteJournal(); err != nil {
		// The records are still in memory; the next rotation or Prune tries again.
		s.counters.Error("journal")
		s.log.Warn("archive: journal compaction failed", "sink", s.name, "err", err)
	}
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
