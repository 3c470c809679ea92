package event

import (
	"slices"
	"strings"
	"time"
)

// Field is one leaf of an event: a dotted ECS path such as "source.ip" and its value.
type Field struct {
	Key   string
	Value Value
}

// Event is one log event as a flat list of dotted-path leaves. Parsers fill it, the
// processing stage adds the pipeline fields, and Encoder turns it into nested ECS JSON
// exactly once. An Event is reused between records: Reset keeps its capacity.
//
// An Event is not safe for concurrent use.
type Event struct {
	// Fields holds the leaves in the order they were set. Keys are unique.
	Fields []Field
	// Time is the moment the event happened, as the record says it; zero when the
	// record has no time, in which case the processing stage uses the receive time.
	Time time.Time
	// ID is the record's own unique id where its format has one (CloudTrail eventID,
	// CloudWatch Logs event id). Empty otherwise: the processing stage then derives one
	// from the intake stream position.
	ID string
	// Dataset is the parser's dataset (for example "aws.alb"); the source's configured
	// dataset, when set, overrides it.
	Dataset string
}

// Reset empties e for reuse, keeping the capacity of its field list. The values
// past the new length are not cleared: the next fields overwrite them, and clearing
// them cost write barriers on every event while a collection runs; what they
// borrow stays reachable until then (a reused event belongs to one worker, whose
// record buffers are reused anyway).
func (e *Event) Reset() {
	e.Fields = e.Fields[:0]
	e.Time = time.Time{}
	e.ID = ""
	e.Dataset = ""
}

// Set sets the leaf at key, replacing an earlier value of the same key.
func (e *Event) Set(key string, v Value) {
	for i := range e.Fields {
		if e.Fields[i].Key == key {
			e.Fields[i].Value = v
			return
		}
	}
	e.Fields = append(e.Fields, Field{Key: key, Value: v})
}

// Add appends the leaf at key without looking for an earlier one. Parsers that set each
// key once use it; setting a key twice with Add leaves the encoder to keep the last.
func (e *Event) Add(key string, v Value) {
	e.Fields = append(e.Fields, Field{Key: key, Value: v})
}

// SetString sets a string leaf unless s is empty.
func (e *Event) SetString(key, s string) {
	if s != "" {
		e.Set(key, String(s))
	}
}

// Get returns the value at key.
func (e *Event) Get(key string) (Value, bool) {
	for i := len(e.Fields) - 1; i >= 0; i-- {
		if e.Fields[i].Key == key {
			return e.Fields[i].Value, true
		}
	}
	return Value{}, false
}

// Has reports whether key is set, as a leaf or as the parent of leaves.
func (e *Event) Has(key string) bool {
	for i := range e.Fields {
		k := e.Fields[i].Key
		if k == key || (len(k) > len(key) && k[len(key)] == '.' && strings.HasPrefix(k, key)) {
			return true
		}
	}
	return false
}

// Delete removes the leaf at key and every leaf below it.
func (e *Event) Delete(key string) {
	e.Fields = slices.DeleteFunc(e.Fields, func(f Field) bool {
		k := f.Key
		return k == key || (len(k) > len(key) && k[len(key)] == '.' && strings.HasPrefix(k, key))
	})
}
