package archivesink

import "errors"

// Crash stops s the way kill -9 would: open files stay in the temporary directory with
// what reached the file so far (the bufio and gzip buffers are lost), the journal is
// not written, and no held batch is acknowledged. Only the goroutine and the file
// descriptors are released, so that the test process stays clean.
func (s *Sink) Crash() {
	s.mu.Lock()
	s.stopped = true
	for _, f := range s.open {
		f.f.Close()
	}
	s.open = map[stretch]*file{}
	s.mu.Unlock()
	close(s.stopTicker)
	s.wg.Wait()
	s.journal.Close()
}

// Remembered returns how many batch sequences the sink holds as archived, and how
// many journal records.
func (s *Sink) Remembered() (seqs, lines int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, set := range s.written {
		seqs += len(set)
	}
	return seqs, len(s.lines)
}

// ErrCrash is what the sink panics with at the step CrashBefore names.
var ErrCrash = errors.New("archivesink test: crash")

// CrashBefore makes the sink panic with ErrCrash just before the named step of its
// next rotation ("journal", "rename" or "acknowledge"); Consume's deferred unlock
// releases the sink's lock, and Crash then ends it as kill -9 would.
func (s *Sink) CrashBefore(step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.testHook = func(at string) {
		if at == step {
			panic(ErrCrash)
		}
	}
}
