package filesource

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
)

// readChunk is how much is read from a file at once.
const readChunk = 256 << 10

type devIno struct{ dev, ino uint64 }

// deadContent is what was read of a file's former content (before a truncation, or
// a checkpoint no file claimed at start): a copy of it (copytruncate) resumes there.
type deadContent struct {
	fp     fingerprint
	offset int64
	cuts   []int64 // batches that may be in the stream (see checkpoint.Cuts); not modified
}

// tracked is one followed file. Only the run loop touches it, except led (the
// committer's, under its lock).
type tracked struct {
	path string
	f    *os.File
	id   devIno
	fp   fingerprint
	gz   bool

	readOff int64 // next byte to read (decompressed bytes for gzip)
	// queued: everything before is handed to the committer (or has no records).
	queued int64
	// cutAt: after a restart, end batches at these offsets, as before the crash
	// (ascending, past queued).
	cutAt []int64
	size  int64 // at the last poll

	line      []byte // a line not yet ended, starting at lineStart
	lineStart int64
	skipping  bool  // inside a line longer than the limit
	skipLen   int64 // its length so far

	rec      []byte // multiline: the record being joined, from recStart
	hasRec   bool
	recStart int64
	recAt    time.Time

	zr      *gzip.Reader
	gzDone  bool
	missing time.Time // when a scan last did not find it (zero: found)
	// missingScans counts the scans in a row that did not find it: one miss may be a
	// scan racing with a rename.
	missingScans int
	idleEOF      bool // the last poll read nothing

	// unplaced: a new file whose start is not decided yet: it may be a copy still
	// being written (copytruncate), recognised once its fingerprint is long enough.
	unplaced bool
	waitFor  *tracked // a copy of this live file: wait for it to be truncated
	waitSize int64
	sizeAt   time.Time // when waitSize was last seen to change

	behind prometheus.Gauge

	led ledgerState // the committer's; see committer
}

// emitted is the offset up to which every record was handed to a batch.
func (t *tracked) emitted() int64 {
	if t.hasRec {
		return t.recStart
	}
	return t.lineStart
}

// Source is the file source.
type Source struct {
	cfg       Config
	name      string
	intake    component.Intake
	log       *slog.Logger
	counters  *component.Counters
	metrics   *component.Metrics
	whole     bool
	maxRecord int
	start     *regexp.Regexp
	store     *store

	files []*tracked
	dead  []deadContent
	first bool // the first scan of a source that never ran

	batch    *batch // being filled; the committer holds the others
	readBuf  []byte
	commit   *committer
	stopping atomic.Bool // set by Stop: the run loop reads no further

	mu       sync.Mutex
	started  bool
	stopped  bool
	cancel   context.CancelFunc
	done     chan struct{}
	runErr   error
	watched  prometheus.Gauge
	lines    prometheus.Counter
	now      func() time.Time
	readyNow bool
}

var _ component.Source = (*Source)(nil)

// New returns a file source.
func New(cfg *Config, deps component.SourceDeps) (*Source, error) {
	s := &Source{cfg: *cfg, name: deps.Name, intake: deps.Intake, log: deps.Log,
		counters: deps.Metrics.For("source", deps.Name), metrics: deps.Metrics, whole: deps.WholeRecords,
		maxRecord: cfg.maxRecord(deps.WholeRecords), now: time.Now,
		store: newStore(filepath.Join(deps.DataDir, "sources", deps.Name)), batch: &batch{}, readBuf: make([]byte, readChunk)}
	s.commit = newCommitter(s, s.store)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Multiline.Start != "" {
		re, err := regexp.Compile(cfg.Multiline.Start)
		if err != nil {
			return nil, fmt.Errorf("multiline.start: %w", err)
		}
		s.start = re
	}
	s.watched = deps.Metrics.FilesWatched.WithLabelValues("source", deps.Name)
	s.lines = deps.Metrics.FileLinesRead.WithLabelValues("source", deps.Name)
	return s, nil
}

// Describe implements component.Source.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s following %s", s.name, strings.Join(s.cfg.Paths, ", "))
}

// Ready implements component.Source.
func (s *Source) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started && !s.stopped
}

// Start implements component.Source: it loads the checkpoints, finds the files and
// starts following them.
func (s *Source) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return fmt.Errorf("file source %s: already started or stopped", s.name)
	}
	cf, exists, err := s.store.loadAll()
	if err != nil {
		return fmt.Errorf("file source %s: checkpoints: %w", s.name, err)
	}
	cps := cf.Files
	for _, f := range cf.Former {
		if fp, ok := parseFingerprint(f.FPLen, f.FP); ok {
			s.dead = append(s.dead, deadContent{fp: fp, offset: f.Offset, cuts: validCuts(f.Offset, f.Cuts, f.Pending)})
		}
	}
	s.first = !exists
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	s.scan(cps)
	if err := s.commit.writeNow(); err != nil {
		cancel()
		s.closeAll()
		return fmt.Errorf("file source %s: checkpoints: %w", s.name, err)
	}
	s.first = false
	s.started = true
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		s.commit.run(ctx)
	}()
	go s.run(ctx, committed)
	return nil
}

// Stop implements component.Source: it ends the run loop. A batch being stored is
// retried until ctx's deadline; lines read but not stored are read again next time.
func (s *Source) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	stopCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	s.stopping.Store(true)
	s.commit.stopReader()
	select {
	case <-s.done:
	case <-stopCtx.Done():
		s.cancel()
		<-s.done
		return fmt.Errorf("file source %s: stopped before the last batch was stored (it will be read again): %w", s.name, ctx.Err())
	}
	s.cancel()
	return nil
}

// run is the reader: it finds and reads the files and hands batches to the
// committer. At the end it lets the committer store what is queued (until ctx ends)
// and write the last checkpoint.
func (s *Source) run(ctx context.Context, committed <-chan struct{}) {
	defer close(s.done)
	defer s.closeAll()
	defer func() {
		s.commit.close()
		<-committed
	}()
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	lastScan := s.now()
	for {
		if s.stopping.Load() || ctx.Err() != nil {
			return
		}
		if s.now().Sub(lastScan) >= s.cfg.ScanInterval {
			s.scan(nil)
			lastScan = s.now()
		}
		s.pollFiles(ctx)
		select {
		case <-poll.C:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Source) closeAll() {
	for _, t := range s.files {
		s.closeFile(t)
	}
	s.files = nil
	s.watched.Set(0)
	s.store.close()
}

func (s *Source) closeFile(t *tracked) {
	if t.f != nil {
		_ = t.f.Close()
		t.f = nil
	}
	if t.zr != nil {
		_ = t.zr.Close()
		t.zr = nil
	}
	s.metrics.FileBytesBehind.DeleteLabelValues("source", s.name, t.path)
}

func (s *Source) excluded(path string) bool {
	base := filepath.Base(path)
	for _, p := range s.cfg.Exclude {
		if ok, _ := filepath.Match(p, base); ok {
			return true
		}
		if ok, _ := filepath.Match(p, path); ok {
			return true
		}
	}
	return strings.HasSuffix(path, ".gz") && !s.cfg.ReadGzip
}

func statID(fi os.FileInfo) devIno {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return devIno{}
	}
	return devIno{dev: uint64(st.Dev), ino: uint64(st.Ino)} //nolint:unconvert // Dev is uint32 on some platforms
}

// scan expands the globs: it follows renames by inode, marks files no longer found,
// and opens new ones. cps, on the first scan, are the saved checkpoints.
func (s *Source) scan(cps []checkpoint) {
	type found struct {
		path string
		id   devIno
	}
	var list []found
	seen := map[devIno]bool{}
	for _, g := range s.cfg.Paths {
		matches, _ := filepath.Glob(g)
		sort.Strings(matches)
		for _, p := range matches {
			if s.excluded(p) {
				continue
			}
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			id := statID(fi)
			if seen[id] {
				continue // a hard link, or two globs
			}
			seen[id] = true
			list = append(list, found{p, id})
		}
	}
	byID := map[devIno]*tracked{}
	for _, t := range s.files {
		byID[t.id] = t
	}
	now := s.now()
	var fresh []found
	for _, f := range list {
		t, ok := byID[f.id]
		if !ok {
			fresh = append(fresh, f)
			continue
		}
		delete(byID, f.id)
		t.missing, t.missingScans = time.Time{}, 0
		if t.path != f.path {
			s.log.Info("file source: file renamed; reading it to its end", "from", t.path, "to", f.path)
			s.metrics.FileRotations.WithLabelValues("source", s.name, "rename").Inc()
			s.metrics.FileBytesBehind.DeleteLabelValues("source", s.name, t.path)
			t.path = f.path
			t.behind = s.metrics.FileBytesBehind.WithLabelValues("source", s.name, t.path)
			s.commit.ident(t)
		}
	}
	for _, t := range byID {
		if t.missing.IsZero() {
			t.missing = now
		}
		t.missingScans++
	}

	// Open the new files first, then decide where each starts: exact matches with a
	// checkpoint (same device, inode and first bytes) before matches by content alone.
	var opened []*tracked
	for _, f := range fresh {
		fd, err := os.Open(f.path)
		if err != nil {
			s.counters.Error("open")
			s.log.Warn("file source: cannot open a file; will try again", "path", f.path, "err", err)
			continue
		}
		fi, err := fd.Stat()
		if err != nil || statID(fi) != f.id {
			fd.Close()
			continue // replaced between stat and open: the next scan sees it
		}
		fp, err := readFingerprint(fd, fingerprintBytes)
		if err != nil {
			fd.Close()
			continue
		}
		opened = append(opened, &tracked{path: f.path, f: fd, id: f.id, fp: fp, size: fi.Size(),
			gz: strings.HasSuffix(f.path, ".gz")})
	}
	claimed := make([]bool, len(cps))
	placed := make([]bool, len(opened))
	for i, t := range opened {
		for j, c := range cps {
			fp, ok := c.fingerprint()
			if claimed[j] || !ok || c.Dev != t.id.dev || c.Ino != t.id.ino || !fp.matches(t.f) {
				continue
			}
			claimed[j], placed[i] = true, true
			t.readOff, t.queued, t.gzDone, t.cutAt = c.Offset, c.Offset, c.Done, c.cuts()
			if !t.gz && t.readOff > t.size {
				// Truncated while we were away, and what it held then was read up to
				// the checkpoint: a copy of it resumes there.
				if identifies(fp, c.Offset) {
					s.addDead(deadContent{fp: fp, offset: c.Offset, cuts: t.cutAt})
				}
				t.readOff, t.queued, t.cutAt = 0, 0, nil
			}
			break
		}
	}
	for j, c := range cps {
		if fp, ok := c.fingerprint(); ok && !claimed[j] && !c.Done {
			s.addDead(deadContent{fp: fp, offset: c.Offset, cuts: c.cuts()})
		}
	}
	for i, t := range opened {
		if !placed[i] {
			if s.first && s.cfg.StartAt == "end" || t.gz {
				s.place(t)
			} else {
				t.unplaced, t.waitSize, t.sizeAt = true, t.size, s.now()
			}
		}
		t.lineStart = t.readOff
		if t.gz && !t.gzDone && t.readOff > 0 {
			if err := s.openGzip(t); err != nil {
				s.log.Warn("file source: cannot read a gzip file", "path", t.path, "err", err)
				t.f.Close()
				continue
			}
		}
		t.behind = s.metrics.FileBytesBehind.WithLabelValues("source", s.name, t.path)
		s.log.Info("file source: following a file", "path", t.path, "offset", t.readOff)
		s.files = append(s.files, t)
		s.commit.add(t, t.queued, t.cutAt)
	}
	s.commit.ident(nil)
	s.watched.Set(float64(len(s.files)))
}

// addDead remembers a former content, the newest last, at most 64.
func (s *Source) addDead(d deadContent) {
	s.dead = append(s.dead, d)
	if len(s.dead) > 64 {
		s.dead = slices.Delete(s.dead, 0, len(s.dead)-64)
	}
}

// identifies reports whether a fingerprint of content read up to offset can tell a
// copy of it: it is long enough to be unlikely in another file, or it covers all
// that was read (then a file that begins the same way holds those very bytes first,
// and skipping them skips nothing not already stored).
func identifies(fp fingerprint, offset int64) bool {
	return fp.n >= minCopyFingerprint || (fp.n > 0 && int64(fp.n) >= offset)
}

// place decides where a new file without a checkpoint starts.
func (s *Source) place(t *tracked) {
	if !t.gz && t.fp.n >= minCopyFingerprint {
		// A copy of a followed file (copytruncate's first step): wait for the
		// original's truncation, then read the copy from where the original stopped.
		for _, o := range s.files {
			// Compared with what the original held when last read (its fingerprint),
			// not with what it holds now: it may be truncated already.
			if o != t && o.waitFor == nil && !o.unplaced && !o.gz && identifies(o.fp, o.emitted()) && o.fp.matches(t.f) {
				t.waitFor = o
				return
			}
		}
		for i := len(s.dead) - 1; i >= 0; i-- {
			d := s.dead[i]
			if identifies(d.fp, d.offset) && d.fp.matches(t.f) {
				s.metrics.FileRotations.WithLabelValues("source", s.name, "copy").Inc()
				t.readOff = min(d.offset, t.size)
				t.queued = t.readOff
				t.cutAt = dropCuts(d.cuts, t.readOff)
				s.dead = slices.Delete(s.dead, i, i+1)
				return
			}
		}
	}
	if s.first && s.cfg.StartAt == "end" && !t.gz {
		t.readOff, t.queued = t.size, t.size
	}
}

func (s *Source) openGzip(t *tracked) error {
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	zr, err := gzip.NewReader(t.f)
	if err != nil {
		return err
	}
	if t.readOff > 0 {
		if _, err := io.CopyN(io.Discard, zr, t.readOff); err != nil {
			zr.Close()
			return err
		}
	}
	t.zr = zr
	return nil
}

// pollFiles reads what each file has new, stores it, and releases files that are
// gone and read to their end.
func (s *Source) pollFiles(ctx context.Context) {
	kept := s.files[:0]
	for _, t := range s.files {
		if ctx.Err() != nil || s.stopping.Load() {
			kept = append(kept, t)
			continue
		}
		if err := s.pollFile(ctx, t); err != nil {
			s.discard(t)
			if ctx.Err() == nil && !s.stopping.Load() {
				s.log.Warn("file source: reading a file failed; will try again", "path", t.path, "err", err)
			}
			kept = append(kept, t)
			continue
		}
		if s.gone(t) {
			// Deleted or renamed away and read to its end: emit a last unended line
			// (the writer is gone), store what is left and let the file go.
			if s.finish(ctx, t) && s.commit.drain(t) {
				s.log.Info("file source: file gone and read to its end; released", "path", t.path)
				for _, c := range s.files {
					if c.waitFor == t {
						s.startCopy(c, t.emitted(), nil)
					}
				}
				s.commit.remove(t)
				s.closeFile(t)
				continue
			}
			s.discard(t)
		}
		kept = append(kept, t)
	}
	clear(s.files[len(kept):])
	s.files = kept
	s.watched.Set(float64(len(s.files)))
}

// discard drops what was read of t and not handed to the committer, to be read again.
func (s *Source) discard(t *tracked) {
	s.batch.reset()
	t.readOff, t.lineStart = t.queued, t.queued
	t.line, t.rec, t.hasRec, t.skipping = t.line[:0], t.rec[:0], false, false
	if t.gz && !t.gzDone {
		if t.zr != nil {
			t.zr.Close()
			t.zr = nil
		}
		t.gzDone = false
	}
}

// gone reports whether a file no longer matched by the globs may be released: read to
// its end, and deleted (no link left) or missed by two scans in a row.
func (s *Source) gone(t *tracked) bool {
	if t.missingScans == 0 || !t.idleEOF || t.f == nil {
		return false
	}
	if t.missingScans >= 2 {
		return true
	}
	fi, err := t.f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

// startCopy starts reading a copy at off; cuts, past off, are the ends of batches of
// the original that may have been stored before a crash: the copy's batches end there,
// as the original's did, and get the same IDs.
func (s *Source) startCopy(c *tracked, off int64, cuts []int64) {
	c.waitFor = nil
	c.readOff = min(off, c.size)
	c.queued, c.lineStart = c.readOff, c.readOff
	c.cutAt = dropCuts(cuts, c.readOff)
	s.commit.set(c, c.queued, c.cutAt)
	s.metrics.FileRotations.WithLabelValues("source", s.name, "copy").Inc()
}

// pollFile reads one file from readOff to its end, handing batches to the committer
// as they fill.
func (s *Source) pollFile(ctx context.Context, t *tracked) error {
	fi, err := t.f.Stat()
	if err != nil {
		return err
	}
	t.size = fi.Size()
	if t.size != t.waitSize {
		t.waitSize, t.sizeAt = t.size, s.now()
	}
	stable := s.now().Sub(t.sizeAt) >= 2*s.cfg.ScanInterval
	if t.unplaced {
		if t.fp, err = readFingerprint(t.f, fingerprintBytes); err != nil {
			return err
		}
		if t.fp.n < minCopyFingerprint && !stable {
			t.idleEOF = true
			return nil
		}
		t.unplaced = false
		s.place(t)
		t.lineStart = t.readOff
		s.commit.set(t, t.queued, t.cutAt)
		s.log.Debug("file source: new file placed", "path", t.path, "offset", t.readOff, "copy_of_live", t.waitFor != nil)
	}
	if t.waitFor != nil {
		// A copy waiting for its original: a plain copy stops growing and the
		// original is never truncated; read it then from where the original is.
		if !stable {
			t.idleEOF = true
			return nil
		}
		s.startCopy(t, t.waitFor.emitted(), nil)
	}
	if t.gz {
		return s.pollGzip(ctx, t)
	}
	if t.size < t.readOff || (t.fp.n > 0 && !t.fp.matches(t.f)) {
		if err := s.truncated(t); err != nil {
			return err
		}
	} else if t.fp.n < fingerprintBytes && t.size > int64(t.fp.n) {
		if fp, err := readFingerprint(t.f, fingerprintBytes); err == nil {
			t.fp = fp
			s.commit.ident(t)
		}
	}
	s.batch.end = t.queued
	if s.whole {
		return s.pollWhole(ctx, t)
	}
	t.idleEOF = true
	buf := s.readBuf
	for !s.stopping.Load() {
		n, err := t.f.ReadAt(buf, t.readOff)
		if n > 0 {
			t.idleEOF = false
			if err := s.consume(ctx, t, buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || n == 0 {
			break
		}
		if err != nil {
			return err
		}
	}
	if t.hasRec && s.now().Sub(t.recAt) >= s.cfg.Multiline.Timeout && len(t.line) == 0 {
		s.emitRec(t)
	}
	if err := s.flush(ctx, t); err != nil {
		return err
	}
	t.behind.Set(float64(max(0, t.size-s.commit.offset(t))))
	return nil
}

var errStopping = errors.New("stopping")

// truncated restarts a file whose content was cut or replaced (copytruncate, or
// `> file`) at its beginning, once its batches of the old content are stored; what was
// read of the old content is remembered (in the checkpoint too) so that a copy of it
// resumes where reading stopped, cutting its batches where batches of the original
// that may be in the stream were cut.
func (s *Source) truncated(t *tracked) error {
	if !s.commit.drain(t) {
		return errStopping
	}
	s.log.Info("file source: file truncated; reading it from the beginning", "path", t.path, "was_at", t.readOff, "size", t.size)
	s.metrics.FileRotations.WithLabelValues("source", s.name, "truncate").Inc()
	old := deadContent{fp: t.fp, offset: t.emitted(), cuts: dropCuts(t.cutAt, t.emitted())}
	copied := false
	for _, c := range s.files {
		if c.waitFor == t {
			s.startCopy(c, old.offset, old.cuts)
			copied = true
		}
	}
	if !copied && identifies(old.fp, old.offset) {
		s.addDead(old)
	}
	s.batch.reset()
	s.batch.end = 0
	t.readOff, t.queued, t.lineStart, t.cutAt = 0, 0, 0, nil
	t.line, t.rec, t.hasRec, t.skipping = nil, nil, false, false
	t.fp, _ = readFingerprint(t.f, fingerprintBytes)
	s.commit.set(t, 0, nil)
	return nil
}

// consume splits data read at t.readOff into lines and hands them on.
func (s *Source) consume(ctx context.Context, t *tracked, data []byte) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		chunk := data
		if i >= 0 {
			chunk = data[:i]
		}
		switch {
		case t.skipping:
			t.skipLen += int64(len(chunk))
		case len(t.line)+len(chunk) > s.maxRecord:
			keep := s.maxRecord - len(t.line)
			t.line = append(t.line, chunk[:keep]...)
			t.skipping, t.skipLen = true, int64(len(t.line)+len(chunk)-keep)
		default:
			t.line = append(t.line, chunk...)
		}
		t.readOff += int64(len(chunk))
		if i < 0 {
			return nil
		}
		t.readOff++ // the newline
		data = data[i+1:]
		if err := s.endLine(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// endLine hands on the line that just ended at t.readOff.
func (s *Source) endLine(ctx context.Context, t *tracked) error {
	line := bytes.TrimSuffix(t.line, []byte{'\r'})
	start := t.lineStart
	switch {
	case t.skipping:
		s.emitRecRaw(t)
		s.batch.addLetter(s.letter(t, line, t.skipLen))
		t.skipping = false
	case s.start == nil:
		if len(line) > 0 {
			s.batch.add(line)
			s.lines.Inc()
		}
	case !t.hasRec || s.start.Match(line):
		s.emitRec(t)
		t.rec = append(t.rec[:0], line...)
		t.hasRec, t.recStart, t.recAt = true, start, s.now()
	case len(t.rec)+1+len(line) > s.maxRecord:
		// The record outgrows the limit: dead-letter what it has and drop the rest
		// of it until the next start line.
		t.rec = append(append(t.rec, '\n'), line...)
		s.batch.addLetter(s.letter(t, t.rec[:s.maxRecord], int64(len(t.rec))))
		t.rec, t.hasRec = t.rec[:0], false
	default:
		t.rec = append(append(t.rec, '\n'), line...)
		t.recAt = s.now()
	}
	t.line = t.line[:0]
	t.lineStart = t.readOff
	s.batch.end = t.emitted()
	// After a crash the batches end where those that may be in the stream ended,
	// whatever the limits are now (they were valid batches then).
	if len(t.cutAt) > 0 && (s.batch.end >= t.cutAt[0] || s.batch.full(100000, event.MaxBatchBytes-64<<10)) || len(t.cutAt) == 0 && s.batch.full(s.cfg.BatchMaxLines, int(s.cfg.BatchMaxBytes)) {
		return s.flush(ctx, t)
	}
	return nil
}

func (s *Source) emitRecRaw(t *tracked) {
	if t.hasRec && t.recStart != t.lineStart {
		s.emitRec(t)
	}
}

// emitRec hands on the multiline record being joined, if any.
func (s *Source) emitRec(t *tracked) {
	if !t.hasRec {
		return
	}
	if len(t.rec) > 0 {
		s.batch.add(t.rec)
		s.lines.Inc()
	}
	t.rec, t.hasRec = t.rec[:0], false
	s.batch.end = t.emitted()
}

func (s *Source) letter(t *tracked, original []byte, size int64) component.Letter {
	s.counters.DeadLettered("intake", 1)
	return component.Letter{Stage: "intake", Source: s.name, Time: s.now(),
		Reason:   fmt.Sprintf("line of %d bytes exceeds max_line_bytes (%d) at %s", size, s.maxRecord, t.path),
		Original: original}
}

// finish emits a last line without a newline and a pending multiline record, and
// hands them on; false when the reader is to stop.
func (s *Source) finish(ctx context.Context, t *tracked) bool {
	if len(t.line) > 0 && !t.skipping {
		t.lineStart = t.readOff
		if s.start != nil && t.hasRec && !s.start.Match(t.line) {
			t.rec = append(append(t.rec, '\n'), t.line...)
		} else {
			s.emitRec(t)
			s.batch.add(t.line)
			s.lines.Inc()
		}
		t.line = t.line[:0]
	}
	s.emitRec(t)
	s.batch.end = t.readOff
	return s.flush(ctx, t) == nil
}

// pollWhole stores the file's new bytes as one record once the file stopped growing.
func (s *Source) pollWhole(ctx context.Context, t *tracked) error {
	t.idleEOF = t.size == t.readOff
	if t.size <= t.readOff {
		return nil
	}
	if t.size != t.lineStart { // lineStart holds the size seen last poll
		t.lineStart = t.size
		t.idleEOF = false
		return nil
	}
	n := t.size - t.readOff
	keep := min(n, int64(s.maxRecord))
	data := make([]byte, keep)
	if _, err := t.f.ReadAt(data, t.readOff); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if n > keep {
		s.batch.addLetter(s.letter(t, data, n))
	} else {
		s.batch.add(data)
		s.lines.Inc()
	}
	t.readOff = t.size
	s.batch.end = t.size
	if err := s.flush(ctx, t); err != nil {
		return err
	}
	t.behind.Set(0)
	return nil
}

// pollGzip reads a gzip file once, decompressed.
func (s *Source) pollGzip(ctx context.Context, t *tracked) error {
	t.idleEOF = true
	s.batch.end = t.queued
	if t.gzDone {
		return nil
	}
	if t.zr == nil {
		if err := s.openGzip(t); err != nil {
			s.counters.Error("gzip")
			t.gzDone = true
			s.commit.ident(t)
			return fmt.Errorf("%s: %w", t.path, err)
		}
	}
	if s.whole {
		data, err := io.ReadAll(io.LimitReader(t.zr, int64(s.maxRecord)+1))
		if err != nil {
			return err
		}
		if len(data) > s.maxRecord {
			s.batch.addLetter(s.letter(t, data[:s.maxRecord], int64(len(data))))
		} else {
			s.batch.add(data)
		}
		t.readOff += int64(len(data))
		s.batch.end = t.readOff
		if err := s.flush(ctx, t); err != nil {
			return err
		}
		t.gzDone = true
		s.commit.ident(t)
		return nil
	}
	buf := s.readBuf
	for {
		n, err := t.zr.Read(buf)
		if n > 0 {
			if err := s.consume(ctx, t, buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			if !s.finish(ctx, t) {
				return errStopping
			}
			t.gzDone = true
			s.commit.ident(t)
			return nil
		}
		if err != nil {
			// Corrupt: store the lines before the damage and give the file up.
			s.counters.Error("gzip")
			s.log.Warn("file source: a gzip file is damaged; stored what came before the damage", "path", t.path, "at", t.readOff, "err", err)
			if !s.finish(ctx, t) {
				return errStopping
			}
			t.gzDone = true
			s.commit.ident(t)
			return nil
		}
	}
}

// flush hands the batch to the committer, which stores it and then moves the file's
// checkpoint past it; the reader goes on with an empty batch, waiting for one while
// all are being stored.
func (s *Source) flush(ctx context.Context, t *tracked) error {
	end := s.batch.end
	if s.batch.empty() {
		// Nothing to store up to end (empty lines): the checkpoint moves over them
		// when no batch of the file is in flight, else the next batch covers them.
		if end > t.queued && s.commit.skip(t, end) {
			t.queued = end
			t.cutAt = dropCuts(t.cutAt, end)
		}
		return nil
	}
	id := s.batch.id(s.name)
	s.commit.submit(job{t: t, end: end, id: id, b: s.batch})
	t.queued = end
	t.cutAt = dropCuts(t.cutAt, end)
	s.batch = s.commit.take()
	if s.batch == nil {
		s.batch = &batch{} // stopping: a placeholder, never stored
		return errStopping
	}
	s.batch.end = end
	return nil
}
