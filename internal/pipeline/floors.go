package pipeline

// floors works out, from observations of the stream taken every prune interval,
// what a sink runner may forget of the batches it delivered.
//
// Sequences: the stream does not deliver again what is at or below the sink
// consumer's acknowledgement floor — once the server has saved that floor. An
// embedded server saves acknowledgements lazily, so the floor used is the one
// observed one interval earlier, long saved by then.
//
// Message IDs: processing publishes a batch (ID "epoch:seq:dataset:chunk", see
// wire.EventsID), waits for the stream's acknowledgement, and only then
// acknowledges intake message seq. So once the processing consumer's ack floor on
// the intake stream is at or past seq, no further copy of that batch can be
// published, and every copy that was published has an events sequence at or below
// the events stream's last sequence read after that floor. A mark records that pair.
// When the sink consumer has since acknowledged everything up to the mark's events
// sequence (or has nothing pending at all), no copy of a batch from an intake
// message at or below the mark's intake floor can reach this sink any more, and its
// ID may be forgotten. As for sequences, only observations one interval old are
// trusted.
type floors struct {
	marks  []mark
	prev   *observation
	intake uint64 // the intake floor of the last mark used
}

// mark is a pair read in this order: the processing consumer's acknowledgement
// floor on the intake stream, then the events stream's last sequence.
type mark struct {
	intake uint64
	events uint64
}

// observation is the sink consumer's state at one prune.
type observation struct {
	ackFloor uint64 // acknowledgement floor, events stream sequence
	caughtUp bool   // nothing pending and nothing unacknowledged
	marks    int    // how many of floors.marks were taken before this observation
}

// maxMarks bounds the marks kept while a sink lags behind; beyond it every other
// one is dropped, which only makes pruning coarser.
const maxMarks = 512

// tick takes this prune's observation of the sink consumer and, when the
// processing consumer and the events stream could be read after it, a mark. It
// returns the sequence floor (forget sequences at or below it) and the intake floor
// (forget message IDs of intake messages at or below it); zero forgets nothing.
func (f *floors) tick(obs observation, m *mark) (seqFloor, intakeFloor uint64) {
	if p := f.prev; p != nil {
		seqFloor = p.ackFloor
		use := -1
		for i := p.marks - 1; i >= 0; i-- {
			if p.caughtUp || f.marks[i].events <= p.ackFloor {
				use = i
				break
			}
		}
		if use >= 0 {
			f.intake = max(f.intake, f.marks[use].intake)
			// Older marks have lower floors: they will never be needed again.
			f.marks = f.marks[use+1:]
		}
	}
	intakeFloor = f.intake
	if len(f.marks) >= maxMarks {
		thin := f.marks[:0]
		for i, mk := range f.marks {
			if i%2 == 0 || i == len(f.marks)-1 {
				thin = append(thin, mk)
			}
		}
		f.marks = thin
	}
	obs.marks = len(f.marks)
	if m != nil {
		f.marks = append(f.marks, *m)
	}
	f.prev = &obs
	return seqFloor, intakeFloor
}
