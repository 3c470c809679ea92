package pipeline

import (
	"bufio"
	"bytes"
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// delivery is one event batch a sink delivered.
type delivery struct {
	epoch int64  // events stream epoch (stream.EventsEpoch)
	seq   uint64 // events stream sequence
	id    string // message ID (wire.EventsID); "" when it was published without one
}

// deliveredLog remembers, on local disk, the event batches a sink has delivered,
// fsynced before their acknowledgements are sent. It answers two questions:
//
// Was this sequence delivered? An embedded JetStream server persists consumer
// acknowledgements lazily, so after a kill -9 or power loss it can redeliver
// batches that were delivered and acknowledged seconds before. Destinations with
// idempotent writes (Elasticsearch's _id, the archive's own journal) absorb that;
// others (Splunk, VictoriaLogs, S3 objects named by another range) would get a
// second copy. With this log the runner acknowledges such a redelivery without
// handing it to the sink again. Sequences are bound to the events stream's epoch: a
// recreated stream numbers from 1 again, and the records of the former one mean
// nothing for it.
//
// Was this batch delivered under another sequence? Processing publishes each event
// batch with a message ID derived from its intake message. The stream drops a
// re-publish only inside its duplicate window; after a slow restart the same batch
// comes back as a new message, with a new sequence and the same ID. Message IDs
// name intake positions, not events stream positions, so they are kept across a
// recreated events stream and forgotten once processing can no longer publish that
// batch again and every copy already published has passed this sink (see floors).
//
// What remains is the window between the destination's answer and the fsync of this
// log.
//
// A line is "<epoch> <seq> <id>", with "-" for a missing ID. Lines of another shape
// (a torn last line, the sequence-only lines of earlier versions) are ignored.
type deliveredLog struct {
	path  string
	epoch int64

	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	recs map[delivery]struct{}
	seqs map[uint64]int // sequences of this epoch, with the number of records naming them
	ids  map[string]int // message IDs, with the number of records naming them
}

func openDeliveredLog(path string, epoch int64) (*deliveredLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	d := &deliveredLog{path: path, epoch: epoch, recs: map[delivery]struct{}{}, seqs: map[uint64]int{}, ids: map[string]int{}}
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	dropped := false
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		rec, ok := parseDelivery(line)
		if !ok || (rec.epoch != epoch && rec.id == "") {
			// A torn last line from a crash (its batch was not acknowledged either, so
			// it is simply delivered again), an old format, or a former stream's
			// sequence: nothing to keep.
			dropped = dropped || len(line) > 0
			continue
		}
		d.addLocked(rec)
	}
	if dropped {
		// Start afresh: the file keeps only what still means something.
		if err := d.rewriteLocked(); err != nil {
			return nil, err
		}
		return d, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	d.f, d.w = f, bufio.NewWriter(f)
	return d, nil
}

func parseDelivery(line []byte) (delivery, bool) {
	fields := bytes.Fields(line)
	if len(fields) != 3 {
		return delivery{}, false
	}
	e, err1 := strconv.ParseInt(string(fields[0]), 10, 64)
	q, err2 := strconv.ParseUint(string(fields[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return delivery{}, false
	}
	rec := delivery{epoch: e, seq: q}
	if id := string(fields[2]); id != "-" {
		rec.id = id
	}
	return rec, true
}

func appendDelivery(b []byte, rec delivery) []byte {
	b = strconv.AppendInt(b, rec.epoch, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, rec.seq, 10)
	b = append(b, ' ')
	if rec.id == "" {
		b = append(b, '-')
	} else {
		b = append(b, rec.id...)
	}
	return append(b, '\n')
}

func (d *deliveredLog) addLocked(rec delivery) {
	if _, ok := d.recs[rec]; ok {
		return
	}
	d.recs[rec] = struct{}{}
	if rec.epoch == d.epoch {
		d.seqs[rec.seq]++
	}
	if rec.id != "" {
		d.ids[rec.id]++
	}
}

func (d *deliveredLog) removeLocked(rec delivery) {
	delete(d.recs, rec)
	if rec.epoch == d.epoch {
		if d.seqs[rec.seq]--; d.seqs[rec.seq] <= 0 {
			delete(d.seqs, rec.seq)
		}
	}
	if rec.id != "" {
		if d.ids[rec.id]--; d.ids[rec.id] <= 0 {
			delete(d.ids, rec.id)
		}
	}
}

// Has reports whether sequence seq of this epoch was delivered.
func (d *deliveredLog) Has(seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seqs[seq] > 0
}

// HasID reports whether a batch with message ID id was delivered.
func (d *deliveredLog) HasID(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ids[id] > 0
}

// Note records rec in memory only, at once, so that a copy arriving before Add has
// written it is recognised too.
func (d *deliveredLog) Note(rec delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addLocked(rec)
}

// Add records recs durably (one fsync for all of them).
func (d *deliveredLog) Add(recs []delivery) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		// A failed rewrite left the file closed; append to whatever is there.
		f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			for _, rec := range recs {
				d.addLocked(rec)
			}
			return err
		}
		d.f, d.w = f, bufio.NewWriter(f)
	}
	var line []byte
	for _, rec := range recs {
		line = appendDelivery(line[:0], rec)
		d.w.Write(line)
		d.addLocked(rec)
	}
	if err := d.w.Flush(); err != nil {
		return err
	}
	return d.f.Sync()
}

// Prune forgets what cannot come back: a record is kept while its sequence is of
// this epoch and above seqFloor (the sink consumer's acknowledgement floor), or while
// keepID says its message ID may still arrive under another sequence.
func (d *deliveredLog) Prune(seqFloor uint64, keepID func(id string) bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var drop []delivery
	for rec := range d.recs {
		if rec.epoch == d.epoch && rec.seq > seqFloor {
			continue
		}
		if rec.id != "" && keepID(rec.id) {
			continue
		}
		drop = append(drop, rec)
	}
	if len(drop) == 0 {
		return nil
	}
	for _, rec := range drop {
		d.removeLocked(rec)
	}
	return d.rewriteLocked()
}

// rewriteLocked replaces the file with the records held in memory and reopens it for
// appending.
func (d *deliveredLog) rewriteLocked() error {
	recs := make([]delivery, 0, len(d.recs))
	for rec := range d.recs {
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b delivery) int {
		return cmp.Or(cmp.Compare(a.epoch, b.epoch), cmp.Compare(a.seq, b.seq), cmp.Compare(a.id, b.id))
	})
	var buf []byte
	for _, rec := range recs {
		buf = appendDelivery(buf, rec)
	}
	tmp := d.path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if err := os.Rename(tmp, d.path); err != nil {
		return err
	}
	if d.f != nil {
		d.f.Close()
	}
	nf, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		d.f = nil
		return err
	}
	d.f, d.w = nf, bufio.NewWriter(nf)
	return nil
}

// Len is the number of records held.
func (d *deliveredLog) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.recs)
}

// Close closes the file.
func (d *deliveredLog) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.w.Flush()
	d.f.Close()
	d.f = nil
	return err
}
