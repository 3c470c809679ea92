package pipeline

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// deliveredLog remembers, on local disk, the events stream sequences a sink has
// delivered, fsynced before their acknowledgements are sent.
//
// Why: an embedded JetStream server persists consumer acknowledgements lazily, so
// after a kill -9 or power loss it can redeliver batches that were delivered and
// acknowledged seconds before. Destinations with idempotent writes (Elasticsearch's
// _id, the archive's own journal) absorb that; others (Splunk, VictoriaLogs, S3
// objects named by another range) would get a second copy. With this log the runner
// acknowledges such a redelivery without handing it to the sink again. What remains
// is the window between the destination's answer and the fsync of this log.
type deliveredLog struct {
	path string
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	set  map[uint64]struct{}
}

func openDeliveredLog(path string) (*deliveredLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	d := &deliveredLog{path: path, set: map[uint64]struct{}{}}
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if n, err := strconv.ParseUint(string(line), 10, 64); err == nil {
			d.set[n] = struct{}{}
		}
		// A torn last line from a crash does not parse and is ignored: its batch
		// was not acknowledged either, so it is simply delivered again.
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	d.f, d.w = f, bufio.NewWriter(f)
	return d, nil
}

// Has reports whether seq was delivered.
func (d *deliveredLog) Has(seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.set[seq]
	return ok
}

// Add records seqs durably (one fsync for all of them).
func (d *deliveredLog) Add(seqs []uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range seqs {
		d.w.WriteString(strconv.FormatUint(s, 10))
		d.w.WriteByte('\n')
		d.set[s] = struct{}{}
	}
	if err := d.w.Flush(); err != nil {
		return err
	}
	return d.f.Sync()
}

// Prune forgets sequences at or below the consumer's acknowledgement floor: the
// stream never redelivers those.
func (d *deliveredLog) Prune(floor uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var keep []uint64
	for s := range d.set {
		if s > floor {
			keep = append(keep, s)
		}
	}
	if len(keep) == len(d.set) {
		return nil
	}
	slices.Sort(keep)
	var buf bytes.Buffer
	for _, s := range keep {
		fmt.Fprintf(&buf, "%d\n", s)
	}
	tmp := d.path + ".new"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o640); err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
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
	d.f.Close()
	nf, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	d.f, d.w = nf, bufio.NewWriter(nf)
	d.set = make(map[uint64]struct{}, len(keep))
	for _, s := range keep {
		d.set[s] = struct{}{}
	}
	return nil
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
