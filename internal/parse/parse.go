// Package parse defines the contract between the processing stage and the format
// parsers: a Parser turns one raw record into zero or more events and reports the parts
// it could not parse. Each format lives in its own package under internal/parse/ and is
// listed once in internal/components.
package parse

import (
	"errors"

	"github.com/vigil-sec/vigil/internal/event"
)

// Emitter receives what a parser makes of one record.
type Emitter interface {
	// Emit hands over one event. The emitter has encoded it when Emit returns, so the
	// parser may reuse e, and the bytes e borrows, right after. An error from Emit is
	// fatal for the record; the parser returns it unchanged.
	Emit(e *event.Event) error
	// Reject reports one part of the record (a line of a multi-line record, one entry of
	// a Records array) that could not be parsed while the rest goes on. original is
	// that part's bytes; the emitter copies it. The pipeline dead-letters it.
	Reject(original []byte, reason error)
	// Skip counts a part deliberately not turned into an event (CloudWatch Logs control
	// messages, CloudTrail digest files, header lines, blank lines) under a short,
	// fixed reason such as "control_message".
	Skip(reason string)
}

// Parser turns one raw record into events.
//
// Parse emits the record's events in order and returns nil, or returns an error when
// the record as a whole cannot be parsed; the pipeline then dead-letters the whole
// record, so the error must say what was wrong and where (field, byte offset). Parse
// must not panic on any input, must not retain rec after it returns, and must not
// emit events after it has decided to return an error for the record unless they were
// complete and correct.
//
// A Parser may keep state between the records of one source, such as the field list
// of a CloudFront "#Fields:" or VPC flow log header line; it is therefore not safe for
// concurrent use, and each processing worker builds its own.
type Parser interface {
	Parse(rec []byte, out Emitter) error
}

// Config is a format's options, decoded from a source's `format_options`.
type Config interface {
	// Validate reports the first problem with the options, naming the option.
	Validate() error
}

// NoConfig is the Config of a format without options.
type NoConfig struct{}

// Validate implements Config.
func (NoConfig) Validate() error { return nil }

// Format describes one built-in format.
type Format struct {
	// Name is the value of a source's `format`.
	Name string
	// Dataset is the event.dataset the format's events get when the source names none
	// (for example "aws.alb"); empty means the source's name.
	Dataset string
	// WholeRecord is true when a record is a whole file or payload (CloudTrail log
	// files, CloudWatch Logs subscription payloads) rather than one line. Sources that
	// read files or objects use it to decide how to cut them into records.
	WholeRecord bool
	// NewConfig returns a pointer to the format's options filled with their defaults.
	NewConfig func() Config
	// New builds a parser from options that passed Validate.
	New func(cfg Config) (Parser, error)
}

// ErrDecode marks an error about the container of the records rather than a record's
// content: bytes that are not valid JSON, gzip or base64. The pipeline dead-letters
// such records under the stage "decode" and everything else under "parse".
var ErrDecode = errors.New("decode")
