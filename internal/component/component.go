// Package component holds the contracts between Vigil's runtime and its components:
// what a source and a sink must do, how a source stores what it received, and the
// metrics every component reports. Component packages implement these interfaces;
// internal/components lists them; internal/pipeline wires and runs them.
package component

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/config"
)

// Source receives data from the outside and stores it through its Intake.
//
// Lifecycle: Start binds listeners (or starts polling) and returns once the source is
// accepting, or with an error if it cannot; background work it starts is owned by
// the source and ends in Stop. Stop stops accepting new work, lets in-flight
// requests finish and answers them (a request whose records are not stored gets an
// error status, never a success), and returns before ctx's deadline. Stop is
// idempotent and safe to call without Start.
//
// Acknowledgement: a source answers its sender with success only after Intake.Store
// returned nil for every record of that unit (request, message, file range).
type Source interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	// Ready reports whether the source is accepting (for /readyz).
	Ready() bool
	// Describe returns a one-line human description ("http on 127.0.0.1:8080").
	Describe() string
}

// Records is one unit a source asks to store: records of one source and format,
// received together.
type Records struct {
	// Dataset, when set, overrides the source's dataset for these records (the
	// embedded default's per-path dataset).
	Dataset string
	// Format, when set, overrides the source's format for these records (text lines
	// posted to a JSON source are parsed as lines).
	Format string
	// Received is when the source got them.
	Received time.Time
	// Records are the raw records. Store copies them; the caller keeps ownership.
	Records [][]byte
	// ID, when set, names this unit for the stream's duplicate detection: storing
	// the same records with the same ID again within buffer.duplicate_window stores
	// nothing new. A source that may read the same data again after a crash (an S3
	// object whose SQS message is redelivered, a poll page whose cursor write did not
	// happen) sets an ID unique per unit of the source and stable across restarts.
	ID string
	// Fields, when set, are added by processing to every event of these records as
	// strings (where the parser did not set them): where the records came from, such
	// as aws.s3.bucket.name and aws.s3.object.key.
	Fields map[string]string
	// RecordFields, when set, holds one map per record (nil for none): fields added
	// to that record's events like Fields, winning over Fields — what a queue says
	// about each message (aws.sqs.message_id). Like Records, Store only reads it
	// during the call.
	RecordFields []map[string]string
	// Lines, when set, holds each record's line number in its file or object (one
	// per record, ascending), which processing adds to its events as LineField.
	// Like Records, Store only reads it during the call.
	Lines     []int
	LineField string
}

// Letter is a record a stage rejected, for the dead-letter queue.
type Letter struct {
	Stage    string // "decode", "parse", "validate", "intake", "sink"
	Reason   string
	Source   string
	Dataset  string
	Format   string
	Time     time.Time
	Original []byte
	// Origin, when known ("epoch:seq:index"), lets a replay keep the record's event IDs.
	Origin string
	// Processor, for a rejection by a processor, is its "index:type" in
	// processing.processors.
	Processor string
	// ID, when set, makes a re-publish of the same letter a duplicate JetStream drops.
	ID string
}

// Intake stores a source's records durably.
type Intake interface {
	// Store writes the records to the source's intake subject, in batches, and returns
	// nil only when the stream has acknowledged all of them. Errors wrap
	// component.ErrFull (answer 429), component.ErrUnavailable (503) or component.ErrTooLarge
	// (413); on error none, some or all records may be stored, so the sender must retry
	// the whole unit (the pipeline's event IDs do not dedupe such a retry).
	Store(ctx context.Context, recs Records) error
	// DeadLetter stores rejected records in the DLQ with their reason.
	DeadLetter(ctx context.Context, letters ...Letter) error
}

// SourceDeps is what a source constructor gets besides its config.
type SourceDeps struct {
	Name    string
	Source  *config.Source
	Intake  Intake
	Log     *slog.Logger
	Metrics *Metrics
	// Embedded is true when running the built-in default (relaxed naming rules).
	Embedded bool
	// DataDir is the node's data directory; a source keeps its checkpoints under
	// DataDir/sources/<name>.
	DataDir string
	// WholeRecords is true when the source's format parses whole objects or payloads
	// (a CloudTrail file, a CloudWatch Logs subscription payload) rather than lines: a
	// source that reads files or objects then stores each one as one record instead
	// of splitting it into lines.
	WholeRecords bool
	// FormatWholeRecord tells, for a source that picks a format per unit
	// (Records.Format), whether that format parses whole objects; nil means false.
	FormatWholeRecord func(format string) bool
	// KV opens (creating it when missing) a JetStream key-value bucket of the
	// node's stream, replicated like the stream, for state several nodes share:
	// the kinesis source keeps its shard leases and checkpoints there. bucket is
	// the bucket's full name ([A-Za-z0-9_-]); the source owns its keys. Nil when the
	// runtime has no stream (unit tests).
	KV func(ctx context.Context, bucket string) (jetstream.KeyValue, error)
	// UnitID, when not nil, returns a new unit ID unique across nodes and restarts.
	// A source that retries a Store of the same records (syslog) names them with one
	// and keeps it across the retries, so that a first try that was stored although
	// it failed (its acknowledgement lost in a leader election) is not stored twice.
	// Nil on the embedded server, where JetStream would hold every ID in Vigil's
	// memory for buffer.duplicate_window; Store names a unit without an ID itself on
	// a cluster.
	UnitID func() string
}

// SinkDeps is what a sink constructor gets besides its config.
type SinkDeps struct {
	Name    string
	Sink    *config.Sink
	DataDir string
	Log     *slog.Logger
	Metrics *Metrics
	// DeadLetter stores documents a destination rejected for good.
	DeadLetter func(ctx context.Context, letters ...Letter) error
}

// Batch is one event batch from the events stream, handed to a sink.
type Batch struct {
	// Dataset of every document in the batch.
	Dataset string
	// Epoch identifies the events stream's lifetime (its creation time, Unix
	// nanoseconds): a recreated stream numbers its sequences from 1 again, so a
	// sequence means a batch only together with its epoch. Seq is the events stream
	// sequence of the batch; Time when it was stored. All three are the same on every
	// redelivery, so names derived from them are stable, and names that include the
	// epoch never collide with a former stream's.
	Epoch int64
	Seq   uint64
	Time  time.Time
	// Docs is NDJSON: one ECS JSON document per line, each ending in '\n'. The sink
	// owns it after Consume is called, until it calls Release.
	Docs []byte
	// Count is the number of documents.
	Count int
	// Frame, for a FrameSink, holds the documents instead of Docs (which is then
	// nil): the batch's body as it crossed the stream, one compressed frame in the
	// encoding the sink's FrameEncoding names. Size is the documents' uncompressed
	// bytes, whichever of the two holds them.
	Frame []byte
	Size  int
	// Redelivered is true when the stream delivered this batch before.
	Redelivered bool

	ack     func(error)
	release func(docs []byte)
}

// NewBatch builds a batch whose Done calls ack. The runtime uses it; tests too. The
// caller sets Epoch.
func NewBatch(dataset string, seq uint64, t time.Time, docs []byte, count int, ack func(error)) *Batch {
	return &Batch{Dataset: dataset, Seq: seq, Time: t, Docs: docs, Count: count, Size: len(docs), ack: ack}
}

// OnRelease makes Release hand Docs to f. The runtime uses it to reuse the memory
// of the documents for a later batch.
func (b *Batch) OnRelease(f func(docs []byte)) { b.release = f }

// Release tells the runtime that the sink is done with Docs: it has copied or
// written out what it needs (compressed it into a file, say) and will not read,
// keep or change that memory again, so the runtime may decode a later batch into
// it. Release sets Docs (and Frame) to nil. It is optional (a sink that never calls it leaves
// the memory to the garbage collector), independent of Done, and safe to call
// more than once.
func (b *Batch) Release() {
	docs, f := b.Docs, b.release
	b.Docs, b.Frame, b.release = nil, nil, nil
	if f != nil && docs != nil {
		f(docs)
	}
}

// Done reports the batch's outcome, exactly once: nil when every document was
// delivered or dead-lettered (the stream then forgets it for this sink), an error to
// have it redelivered later.
func (b *Batch) Done(err error) {
	if b.ack != nil {
		f := b.ack
		b.ack = nil
		f(err)
	}
}

// Sink delivers event batches to one destination.
//
// Lifecycle: Start prepares the destination (directories, clients) and may start
// background work owned by the sink. Consume takes one batch; it may hold it (to
// batch further) and must call Done on it exactly once, after the documents are
// durably delivered — or with an error, to get it redelivered. Consume may block to
// apply backpressure; it returns an error only when the sink cannot take batches at
// all. Stop flushes everything held, calls Done on every held batch, and returns
// before ctx's deadline; it is idempotent and safe without Start.
type Sink interface {
	Start(ctx context.Context) error
	Consume(ctx context.Context, b *Batch) error
	Stop(ctx context.Context) error
	Describe() string
}

// FrameSink is implemented by a sink that writes event batches compressed, in a
// format where compressed frames appended one after another stay valid (a gzip or
// zstd file). FrameEncoding names that encoding (event.EncodingGzip or
// event.EncodingZstd; empty: none, as configured): a batch that crossed the stream
// in it comes to Consume with Frame set and Docs nil, to be written as it is; any
// other comes with Docs.
type FrameSink interface {
	FrameEncoding() string
}

// Pruner is implemented by a sink that remembers the batches it delivered (to
// recognise a redelivery after a crash) and can forget what the stream will not
// deliver again. The runtime calls Prune from time to time, never concurrently with
// itself, but concurrently with Consume.
type Pruner interface {
	// Prune says that no batch of the events stream epoch with a sequence at or
	// below floor (the sink's acknowledgement floor, observed long enough ago to be
	// saved by the stream), and no batch of another epoch, will be delivered again.
	Prune(epoch int64, floor uint64)
}
