package filesource

import (
	"context"
	"encoding/hex"
	"slices"
	"sync"
	"time"
)

// pipelineDepth is how many batches exist per source: one being filled by the reader,
// the others queued for or being stored by the committer. It bounds the memory a
// source holds (~pipelineDepth × batch_max_bytes) and how far reading runs ahead of
// storing.
const pipelineDepth = 4

// ledgerState is a followed file's entry in the checkpoint as the committer writes
// it. Guarded by committer.mu.
type ledgerState struct {
	listed bool // written to the checkpoint (not a copy waiting for its original)
	path   string
	fp     fingerprint
	// offset: every line before it is stored.
	offset int64
	// cuts are the ends of batches that may be in the stream (handed to the
	// committer, or re-read after a restart and not yet stored again), ascending,
	// each past offset. After a crash the file is read again from offset and cut
	// at each of them, so that each batch gets the ID it had.
	cuts     []int64
	inflight int   // batches handed to the committer and not yet stored
	gzEnd    int64 // a gzip file read to its end at this offset; -1: not yet
}

// job is one batch handed from the reader to the committer.
type job struct {
	t   *tracked
	end int64
	id  string
	b   *batch
	ver uint64 // the first checkpoint version naming end
}

// committer stores the batches the run loop (the reader) hands it, in order, and
// writes the checkpoints: a batch is stored only after a checkpoint naming its end
// (with the ends of all batches that may be in the stream) is written and fsynced, so
// that after a crash each is cut and named as before and the stream drops the ones it
// has; once it is stored, the next write moves the file's offset past it. Three
// things overlap: the reader prepares the next batches (up to pipelineDepth-1 ahead),
// the writer makes their ends durable, and the current batch is being stored.
//
// Ownership: the reader owns tracked except its led field, which only code holding mu
// touches; a batch belongs to the reader from take until submit, then to the
// committer until it is back in free.
type committer struct {
	s     *Source
	store *store

	mu      sync.Mutex
	cond    *sync.Cond
	files   []*tracked
	dead    []deadContent
	queue   []job
	free    []*batch
	version uint64 // bumped on each change of what the checkpoint says
	written uint64 // the version last written
	busy    int    // jobs queued or being stored
	closing bool   // no more jobs: store what is queued, write, return
	stored  bool   // run stored all it will: the writer writes once more and ends
	halt    bool   // the reader stops: take returns at once
}

func newCommitter(s *Source, st *store) *committer {
	c := &committer{s: s, store: st}
	c.cond = sync.NewCond(&c.mu)
	for range pipelineDepth - 1 {
		c.free = append(c.free, &batch{})
	}
	return c
}

func insertCut(cuts []int64, end int64) []int64 {
	i, found := slices.BinarySearch(cuts, end)
	if found {
		return cuts
	}
	return slices.Insert(cuts, i, end)
}

func dropCuts(cuts []int64, upTo int64) []int64 {
	i := 0
	for i < len(cuts) && cuts[i] <= upTo {
		i++
	}
	return cuts[i:]
}

func (c *committer) changed() {
	c.version++
	c.cond.Broadcast()
}

// add starts tracking t's entry: reading starts at offset and the batches end at
// cuts first (a restart's replay).
func (c *committer) add(t *tracked, offset int64, cuts []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files = append(c.files, t)
	c.setLocked(t, offset, cuts)
}

// set moves t's entry to offset and cuts; only with none of t's batches in flight
// (placement, a copy started, a truncation after drain).
func (c *committer) set(t *tracked, offset int64, cuts []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(t, offset, cuts)
}

func (c *committer) setLocked(t *tracked, offset int64, cuts []int64) {
	l := &t.led
	l.offset = offset
	l.cuts = dropCuts(slices.Clone(cuts), offset)
	l.gzEnd = -1
	if t.gzDone {
		l.gzEnd = offset
	}
	c.identLocked(t)
}

// ident publishes t's identity (path, fingerprint, whether it is listed, gzip done)
// and the former contents; nil t: only those.
func (c *committer) ident(t *tracked) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.identLocked(t)
}

func (c *committer) identLocked(t *tracked) {
	c.dead = slices.Clone(c.s.dead)
	c.changed()
	if t == nil {
		return
	}
	l := &t.led
	l.listed = t.waitFor == nil && !t.unplaced
	l.path, l.fp = t.path, t.fp
	if t.gzDone && l.gzEnd < 0 {
		l.gzEnd = t.readOff
	}
}

// remove stops tracking t; only with none of its batches in flight.
func (c *committer) remove(t *tracked) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.files, t); i >= 0 {
		c.files = slices.Delete(c.files, i, i+1)
		c.changed()
	}
}

// skip moves t's offset over a range without records (empty lines) when none of its
// batches is in flight; false otherwise.
func (c *committer) skip(t *tracked, end int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := &t.led
	if l.inflight > 0 {
		return false
	}
	if end > l.offset {
		l.offset = end
		l.cuts = dropCuts(l.cuts, end)
		c.changed()
	}
	return true
}

// offset returns t's stored offset.
func (c *committer) offset(t *tracked) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.led.offset
}

// submit hands a batch to the committer; its end is in every checkpoint written from
// now on until it is stored.
func (c *committer) submit(j job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j.t.led.inflight++
	j.t.led.cuts = insertCut(j.t.led.cuts, j.end)
	c.busy++
	c.changed()
	j.ver = c.version
	c.queue = append(c.queue, j)
}

// take returns an empty batch for the reader, waiting while all are being stored
// (backpressure); nil when the reader is to stop.
func (c *committer) take() *batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.free) == 0 && !c.halt {
		c.cond.Wait()
	}
	if c.halt {
		return nil
	}
	b := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	return b
}

// drain waits until none of t's batches is in flight; false when the reader is to
// stop first.
func (c *committer) drain(t *tracked) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.halt && t.led.inflight > 0 {
		c.cond.Wait()
	}
	return !c.halt
}

// stopReader makes take and drain return at once.
func (c *committer) stopReader() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.halt = true
	c.cond.Broadcast()
}

// close tells run that no more jobs come.
func (c *committer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	c.cond.Broadcast()
}

// snapshotLocked is the checkpoint file as the entries say now.
func (c *committer) snapshotLocked() checkpointFile {
	cps := make([]checkpoint, 0, len(c.files))
	for _, t := range c.files {
		l := &t.led
		if !l.listed {
			continue // a copy not started: placed again by content after a restart
		}
		cps = append(cps, checkpoint{Path: l.path, Dev: t.id.dev, Ino: t.id.ino, FPLen: l.fp.n,
			FP: hex.EncodeToString(l.fp.sum[:]), Offset: l.offset, Cuts: slices.Clone(l.cuts),
			Done: l.gzEnd >= 0 && l.offset >= l.gzEnd})
	}
	formers := make([]former, 0, len(c.dead))
	for _, d := range c.dead {
		formers = append(formers, former{FPLen: d.fp.n, FP: hex.EncodeToString(d.fp.sum[:]), Offset: d.offset, Cuts: d.cuts})
	}
	return checkpointFile{Version: 2, Files: cps, Former: formers}
}

// writeNow writes the checkpoint if it changed since the last write.
func (c *committer) writeNow() error {
	c.mu.Lock()
	v := c.version
	if v == c.written {
		c.mu.Unlock()
		return nil
	}
	cf := c.snapshotLocked()
	c.mu.Unlock()
	if err := c.store.saveAll(cf); err != nil {
		return err
	}
	c.mu.Lock()
	c.written = max(c.written, v)
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}

// run stores the jobs, in order, until close, then stores what is queued; beside it
// a writer goroutine (writeLoop) writes the checkpoints, so that the next batches'
// ends are durable while the current batch is being stored. A batch is
// stored only once a checkpoint naming its end is written. When ctx ends (Stop's
// deadline) run stops storing; the batches not stored are read again next time.
// It returns after a last checkpoint write.
func (c *committer) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { c.writeLoop(ctx) })
	defer wg.Wait()
	defer func() {
		c.mu.Lock()
		c.stored = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closing && ctx.Err() == nil {
			c.cond.Wait()
		}
		if len(c.queue) == 0 || ctx.Err() != nil {
			c.mu.Unlock()
			c.fail(c.takeQueue())
			return
		}
		// Left in the queue while waiting: the writer writes for the queue's jobs.
		j := c.queue[0]
		for c.written < j.ver && ctx.Err() == nil {
			c.cond.Wait()
		}
		c.queue = c.queue[1:]
		c.mu.Unlock()
		if ctx.Err() != nil {
			c.fail([]job{j})
			continue // fails the rest, returns
		}
		if err := j.b.store(ctx, c.s, j.id); err != nil {
			c.fail([]job{j})
			continue
		}
		c.mu.Lock()
		l := &j.t.led
		l.inflight--
		l.offset = max(l.offset, j.end)
		l.cuts = dropCuts(l.cuts, l.offset)
		c.release(j.b)
		c.mu.Unlock()
	}
}

// writeLoop writes the checkpoint when a queued batch's end is not yet in it, or when
// it changed and no batch is in flight (then the offsets catch up), retrying with
// backoff while it fails (the batches wait meanwhile), until run is done; then once
// more. Offsets moved by stores while batches are queued go with the next write: one
// fsync per batch during a backlog.
func (c *committer) writeLoop(ctx context.Context) {
	backoff := 20 * time.Millisecond
	for {
		c.mu.Lock()
		for !c.stored && (c.version == c.written ||
			c.busy > 0 && (len(c.queue) == 0 || c.queue[len(c.queue)-1].ver <= c.written)) {
			c.cond.Wait()
		}
		last := c.stored
		c.mu.Unlock()
		err := c.writeNow()
		if err == nil {
			if last {
				return
			}
			backoff = 20 * time.Millisecond
			continue
		}
		c.s.counters.Error("checkpoint")
		if last {
			c.s.log.Error("file source: could not save checkpoints at stop; lines stored since the last save will be read again", "err", err)
			return
		}
		c.s.log.Error("file source: could not save checkpoints; holding the next batches until it works", "err", err)
		if ctx.Err() != nil {
			// Stopping: run gives up its batches; write once more after it.
			c.mu.Lock()
			for !c.stored {
				c.cond.Wait()
			}
			c.mu.Unlock()
			continue
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (c *committer) takeQueue() []job {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	c.queue = nil
	return q
}

// fail gives back jobs not stored: their ends stay in the checkpoint, to be read and
// cut the same way next time.
func (c *committer) fail(jobs []job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range jobs {
		j.t.led.inflight--
		c.release(j.b)
	}
}

func (c *committer) release(b *batch) {
	b.reset()
	c.free = append(c.free, b)
	c.busy--
	c.changed()
}
