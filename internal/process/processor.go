package process

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
)

// Processor shapes one event between parsing and publishing. The parse and normalize
// step always runs first (it sets @timestamp, event.id, event.dataset, event.original,
// agent.* and ecs.version); the configured processors then run in their order, each
// only when its `if` condition holds, and the event is encoded once after the last.
//
// The rules a processor follows:
//   - Process runs on the hot path, once per event, on the worker goroutine that owns
//     the instance: every processing worker builds its own chain, so an instance is
//     never called concurrently and needs no locks. It must not block on I/O.
//   - It may read and change it.Event: set, rename and delete fields. Setting
//     event.dataset routes the event: the chain publishes it under the dataset that
//     field holds after the last processor. It must not keep the event, or bytes
//     borrowed from it, after it returns.
//   - It answers Pass to hand the event on or Drop to discard it on purpose (counted
//     as vigil_discarded_total{reason="<type>:<name or index>"}). A non-nil error
//     rejects the event: its raw record goes to the dead-letter stream under stage
//     "process" (or the stage a ValidationError implies) with the processor's index,
//     type and the error. A rejection never stops the batch or the worker, and a panic
//     is recovered by the chain, counted and treated as a rejection.
//   - Side output, such as an alert, goes through it.Emit: emitted events are
//     published like others and pass through no further processors.
type Processor interface {
	Process(it *Item) (Verdict, error)
}

// ReadOnly is implemented by processors that never change the event (drop,
// validate, detection rules). The chain keeps the event's cached encoding across
// them, so a validate step at the end costs no second encoding.
type ReadOnly interface {
	ReadOnly() bool
}

// Verdict is what a processor decided about an event.
type Verdict uint8

const (
	// Pass hands the event to the next processor.
	Pass Verdict = iota
	// Drop discards the event; it is counted, never dead-lettered.
	Drop
)

// Type is one processor type: its config and its constructor.
type Type struct {
	// Name is the `type:` of the config entry.
	Name string
	// NewConfig returns a config with the type's defaults; the loader decodes the
	// entry's own keys into it and rejects unknown ones.
	NewConfig func() config.Component
	// New builds one instance from a validated config. It is called once per
	// processing worker.
	New func(cfg config.Component, deps Deps) (Processor, error)
}

// Deps is what a processor constructor gets besides its config.
type Deps struct {
	Log *slog.Logger
	// Name is the processor's configured name (may be empty).
	Name string
}

// Item is the event a processor works on, with what it came from.
type Item struct {
	// Event is the event, with the pipeline's fields already set.
	Event *event.Event
	// Record is the raw record the event was parsed from (read-only).
	Record []byte
	// Source is the name of the source that received the record.
	Source string

	enc   *event.Encoder
	doc   []byte
	fresh bool // doc is the encoding of Event as it is now
	emit  sideOutput
}

// sideOutput takes the events a processor emits.
type sideOutput interface {
	side(e *event.Event) error
	sample(rule string, b []byte) error
}

// SampleOutput is implemented by an Output that takes aggregation samples (the
// processing stage publishes them to the aggregation stream with the record's
// events). Outputs without it, such as `vigil parse`, ignore samples.
type SampleOutput interface {
	// Sample takes one sample of rule; b is only valid during the call.
	Sample(rule string, b []byte) error
}

// NewItem returns an Item for e with its own encoder and no side output, for running
// a chain or a processor outside the processing stage (tools and tests).
func NewItem(e *event.Event, record []byte, source string) *Item {
	return &Item{Event: e, Record: record, Source: source, enc: &event.Encoder{}}
}

// Dataset returns the event's dataset (its event.dataset field).
func (it *Item) Dataset() string {
	v, _ := it.Event.Get("event.dataset")
	return v.Str()
}

// Doc returns the event encoded as ECS JSON. The encoding is cached until a
// processor that may change the event runs; the bytes are valid until then.
func (it *Item) Doc() []byte {
	if !it.fresh {
		it.doc = it.enc.Append(it.doc[:0], it.Event)
		it.fresh = true
	}
	return it.doc
}

// Emit publishes e as an extra event (an alert) under its own event.dataset. e is
// encoded during the call; the caller keeps ownership.
func (it *Item) Emit(e *event.Event) error {
	if it.emit == nil {
		return errors.New("this chain takes no side output")
	}
	return it.emit.side(e)
}

// Sample hands one aggregation sample of a threshold rule to the stage, which
// publishes it to the rule's aggregation subject together with the record's events,
// before the record is acknowledged. b is copied during the call.
func (it *Item) Sample(rule string, b []byte) error {
	if it.emit == nil {
		return nil
	}
	return it.emit.sample(rule, b)
}

// ValidationError marks a rejection by schema validation (stage "validate").
type ValidationError struct{ Err error }

func (e *ValidationError) Error() string { return "validation: " + e.Err.Error() }
func (e *ValidationError) Unwrap() error { return e.Err }

// IsValidationError reports whether a rejection came from schema validation.
func IsValidationError(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve)
}

// StepError is a processor's rejection of an event, with where in the chain it
// happened.
type StepError struct {
	// Index is the processor's position in processing.processors (0-based).
	Index int
	// Type and Name are the processor's type and configured name (may be empty).
	Type, Name string
	Err        error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("processors[%d] (%s): %v", e.Index, e.label(), e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

func (e *StepError) label() string {
	if e.Name != "" {
		return e.Type + " " + e.Name
	}
	return e.Type
}

// DLQStage returns the dead-letter stage of a rejection: "validate" for schema
// validation, "process" for any other processor, "decode" or "parse" for a parser's.
func DLQStage(err error) string {
	switch {
	case IsValidationError(err):
		return "validate"
	case isStepError(err):
		return "process"
	case IsDecodeError(err):
		return "decode"
	}
	return "parse"
}

func isStepError(err error) bool {
	var se *StepError
	return errors.As(err, &se)
}
