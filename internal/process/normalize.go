// Package process turns raw records into ECS documents: it runs a source's parser on
// each record, adds the pipeline's fields (@timestamp, event.id, event.dataset,
// event.ingested, event.original, agent.*, ecs.version) and encodes each event to
// JSON exactly once. The processing stage and `vigil parse` both use it, so what the
// command prints is what the pipeline stores.
package process

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

// ECSVersion is the ECS version the documents follow.
const ECSVersion = "8.17.0"

// Output receives what Normalizer makes of a record.
type Output interface {
	// Event takes one encoded document (no trailing newline) of a dataset. doc is only
	// valid during the call.
	Event(dataset string, doc []byte) error
	// Reject takes a part of a record that could not be parsed, with its index among
	// the record's rejected parts (deterministic, for dead-letter IDs).
	Reject(part int, original []byte, reason error)
	// Skip counts a deliberately skipped part.
	Skip(reason string)
}

// Normalizer processes the records of one source. Not safe for concurrent use: each
// worker has its own.
type Normalizer struct {
	// Source is the source's name; Dataset the dataset used when neither the record's
	// batch nor the parser names one.
	Source  string
	Dataset string
	// FormatDataset is the format's default dataset (may be empty).
	FormatDataset string
	// KeepOriginal keeps event.original.
	KeepOriginal bool
	// Parser parses the source's records.
	Parser parse.Parser
	// Chain, when set, runs the configured processors on each event before it is
	// encoded; a rejection rejects the record (the caller dead-letters the raw record
	// under Stage(err)).
	Chain *Chain
	// AgentName and AgentVersion fill agent.*.
	AgentName    string
	AgentVersion string

	enc  event.Encoder
	buf  []byte
	emit emitter
	item Item
	side []byte
	// rec is the record being processed (kept here rather than on the stack, where
	// the emitter's pointer to it would move it to the heap on every call).
	rec Record
	// ids holds derived event IDs back to back; see id.
	ids []byte
}

// idChunk is the size of the memory derived event IDs are written into.
const idChunk = 4 << 10

// id returns the derived ID of the sub-th event of the record at o. The IDs share
// chunks of memory that are never written again once an ID is in them, so the
// returned string stays valid (and unchanged) for as long as anything refers to it,
// as a string must; one allocation serves about 200 events instead of one each.
func (n *Normalizer) id(o event.Origin, sub uint32) string {
	if cap(n.ids)-len(n.ids) < event.IDLen {
		n.ids = make([]byte, 0, idChunk)
	}
	at := len(n.ids)
	n.ids = event.AppendID(n.ids, o, sub)
	b := n.ids[at:len(n.ids):len(n.ids)]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Record is one raw record and where it came from.
type Record struct {
	Data     []byte
	Origin   event.Origin
	Received time.Time
	// Dataset, when set, is the dataset the batch asked for (it wins over the parser's).
	Dataset string
	// Fields are added to each event as strings where the parser did not set them
	// (the source's metadata: bucket and key of an S3 object).
	Fields map[string]string
	// RecordFields are this record's own fields, added like Fields and winning
	// over them (an SQS message's ID and attributes).
	RecordFields map[string]string
	// Line, when LineField is set, is the record's line number in its object.
	Line      int
	LineField string
}

// Process parses one record and hands its documents to out. It returns the parser's
// error when the record as a whole is rejected (nothing of it was passed on, unless
// the parser broke its contract), or the first error of out.Event.
func (n *Normalizer) Process(rec Record, out Output) (events int, err error) {
	n.rec = rec
	n.emit = emitter{n: n, rec: &n.rec, out: out}
	defer func() {
		// A parser must never panic; if one does, the record is rejected (and
		// dead-lettered) instead of taking the whole node down.
		if r := recover(); r != nil {
			events = int(n.emit.sub)
			err = fmt.Errorf("parser failed on this record (a bug; please report it with the record): %v", r)
		}
		// Drop the references to the record and its output until the next call.
		n.rec, n.emit = Record{}, emitter{}
	}()
	err = n.Parser.Parse(n.rec.Data, &n.emit)
	events = int(n.emit.sub)
	if n.emit.outErr != nil {
		return events, n.emit.outErr
	}
	return events, err
}

// IsDecodeError reports whether a parser error is about the record's container
// (stage "decode") rather than its content (stage "parse").
func IsDecodeError(err error) bool { return errors.Is(err, parse.ErrDecode) }

type emitter struct {
	n      *Normalizer
	rec    *Record
	out    Output
	sub    uint32
	parts  int
	outErr error
}

func (em *emitter) Emit(e *event.Event) error {
	if em.outErr != nil {
		return em.outErr
	}
	n, rec := em.n, em.rec
	dataset := rec.Dataset
	if dataset == "" {
		dataset = e.Dataset
	}
	if dataset == "" {
		dataset = n.FormatDataset
	}
	if dataset == "" {
		dataset = n.Dataset
	}
	if dataset == "" {
		dataset = n.Source
	}
	ts := e.Time
	if ts.IsZero() {
		ts = rec.Received
	}
	id := e.ID
	if id == "" {
		id = n.id(rec.Origin, em.sub)
	}
	em.sub++
	n.setPipelineFields(e, ts, id, dataset, rec)
	for k, v := range rec.RecordFields {
		if _, ok := e.Get(k); !ok {
			e.Set(k, event.String(v))
		}
	}
	for k, v := range rec.Fields {
		if _, ok := e.Get(k); !ok {
			e.Set(k, event.String(v))
		}
	}
	if rec.LineField != "" {
		e.Set(rec.LineField, event.Int(int64(rec.Line)))
	}
	it := &n.item
	*it = Item{Event: e, Record: rec.Data, Source: n.Source, enc: &n.enc, doc: n.buf[:0], emit: em}
	if n.Chain != nil {
		v, reason, err := n.Chain.Run(it)
		n.buf = it.doc[:0] // keep the grown buffer
		switch {
		case err != nil:
			// The parser goes on with the record's other events; this one is rejected
			// with the whole raw record, so a replay after fixing the config re-parses it.
			em.out.Reject(em.parts, rec.Data, err)
			em.parts++
			return nil
		case v == Drop:
			em.out.Skip(reason)
			return nil
		}
		dataset = it.Dataset()
	}
	doc := it.Doc()
	n.buf = doc[:0]
	if err := em.out.Event(dataset, doc); err != nil {
		em.outErr = err
		return err
	}
	return nil
}

// The pipeline's own fields.
const (
	pfTimestamp = iota
	pfID
	pfDataset
	pfIngested
	pfOriginal
	pfAgentType
	pfAgentName
	pfAgentVersion
	pfECSVersion
	numPipelineFields
)

// setPipelineFields sets @timestamp, event.id, event.dataset, event.ingested,
// event.original (unless the parser set it; removed when the source does not keep
// it), agent.* and ecs.version — as Event.Set would one after the other (a key
// already there is replaced where it is, the first of two; a new one appended),
// but finding them all in one pass over the fields instead of one pass each, and
// appending the new ones in the order the encoder writes them.
func (n *Normalizer) setPipelineFields(e *event.Event, ts time.Time, id, dataset string, rec *Record) {
	if !n.KeepOriginal {
		e.Delete("event.original")
	}
	var at [numPipelineFields]int
	for i := range at {
		at[i] = -1
	}
	for i := range e.Fields {
		k := -1
		switch e.Fields[i].Key {
		case "@timestamp":
			k = pfTimestamp
		case "event.id":
			k = pfID
		case "event.dataset":
			k = pfDataset
		case "event.ingested":
			k = pfIngested
		case "event.original":
			k = pfOriginal
		case "agent.type":
			k = pfAgentType
		case "agent.name":
			k = pfAgentName
		case "agent.version":
			k = pfAgentVersion
		case "ecs.version":
			k = pfECSVersion
		}
		if k >= 0 && at[k] < 0 {
			at[k] = i
		}
	}
	set := func(k int, key string, v event.Value) {
		if i := at[k]; i >= 0 {
			e.Fields[i].Value = v
			return
		}
		e.Fields = append(e.Fields, event.Field{Key: key, Value: v})
	}
	// In the encoder's key order, so that what is appended is one ascending run
	// (the encoder merges runs: one more pass rather than five).
	set(pfTimestamp, "@timestamp", event.Time(ts))
	if n.AgentName != "" {
		set(pfAgentName, "agent.name", event.String(n.AgentName))
	}
	set(pfAgentType, "agent.type", event.String("vigil"))
	if n.AgentVersion != "" {
		set(pfAgentVersion, "agent.version", event.String(n.AgentVersion))
	}
	set(pfECSVersion, "ecs.version", event.String(ECSVersion))
	set(pfDataset, "event.dataset", event.String(dataset))
	set(pfID, "event.id", event.String(id))
	set(pfIngested, "event.ingested", event.Time(rec.Received))
	if n.KeepOriginal && at[pfOriginal] < 0 {
		set(pfOriginal, "event.original", event.Bytes(rec.Data))
	}
}

// side publishes an event a processor emitted (an alert) under its own dataset.
func (em *emitter) side(e *event.Event) error {
	if em.outErr != nil {
		return em.outErr
	}
	ds, _ := e.Get("event.dataset")
	if ds.Str() == "" || !config.ValidDataset(ds.Str()) {
		return fmt.Errorf("an emitted event needs a valid event.dataset, got %q", ds.Str())
	}
	em.n.side = em.n.enc.Append(em.n.side[:0], e)
	if err := em.out.Event(ds.Str(), em.n.side); err != nil {
		em.outErr = err
		return err
	}
	return nil
}

// sample hands a threshold rule's sample to the output, when it takes samples.
func (em *emitter) sample(rule string, b []byte) error {
	if em.outErr != nil {
		return em.outErr
	}
	so, ok := em.out.(SampleOutput)
	if !ok {
		return nil
	}
	if err := so.Sample(rule, b); err != nil {
		em.outErr = err
		return err
	}
	return nil
}

func (em *emitter) Reject(original []byte, reason error) {
	if reason == nil {
		reason = fmt.Errorf("rejected by the parser")
	}
	em.out.Reject(em.parts, original, reason)
	em.parts++
}

func (em *emitter) Skip(reason string) { em.out.Skip(reason) }
