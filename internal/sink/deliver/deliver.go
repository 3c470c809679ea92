// Package deliver is the delivery engine of the sinks that send event documents to
// an HTTP bulk API (elasticsearch and opensearch, splunk_hec). The engine frames the
// documents of event batches into requests bounded by count, bytes and age, sends at
// most MaxInFlight requests at once (Consume blocks while all are busy), and settles
// every document on its own: delivered, dead-lettered with its reason, or sent again
// with exponential backoff — only the documents that failed transiently — until it
// resolves or the sink stops. A batch may span requests; it is acknowledged once,
// when the last of its documents is resolved.
//
// A sink supplies only its protocol (Protocol): how a document is framed into a
// request body, and how one request is sent and its answer classified per document.
package deliver

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
)

// ErrStopped is the outcome of batches still unresolved when the sink stops (or
// that a protocol gives up on at stop): the stream redelivers them.
var ErrStopped = errors.New("sink stopped before delivery was confirmed; the batch will be redelivered")

// Protocol is a destination's side of delivery.
type Protocol struct {
	// Frame appends doc, one document of b, framed for a request, to body and
	// returns the extended body and the offset in it at which doc's bytes were
	// copied, as they are (the engine reads the document back from there for dead
	// letters). The engine calls Frame from one goroutine at a time, so it may use
	// scratch state of its own without a lock.
	Frame func(body, doc []byte, b *component.Batch) (out []byte, at int)
	// Send sends one request and reports what became of its documents. body is the
	// request: the framed documents of r, in order; it is Send's only during the
	// call. ctx ends when the sink gives up (Stop's deadline), and Send then returns
	// Stopped. Up to MaxInFlight calls run at once.
	Send func(ctx context.Context, body []byte, r *Request) Result
}

// Outcome is what became of a request, or of one of its documents.
type Outcome uint8

const (
	// Delivered: the destination stored it.
	Delivered Outcome = iota
	// Duplicate: the destination had it already, from an earlier attempt. It is
	// resolved like Delivered but counted as discarded ("already_indexed"), not as
	// sent.
	Duplicate
	// Retry: a transient failure. Sent again after a backoff, with the other
	// documents of the attempt that failed transiently.
	Retry
	// DeadLetter: refused for good. Sent to the dead-letter stream with the Reason.
	DeadLetter
	// Resend, for some documents of a request only: neither stored nor refused,
	// because the destination refused another document of the request. Sent again
	// at once, within the same attempt.
	Resend
	// Split, for a whole request only: refused as a whole without naming a document
	// (too large, or malformed somewhere). Halved and sent again until the document
	// at fault is alone, which is then dead-lettered with the Reason.
	Split
	// Held, for a whole request only: accepted but not yet confirmed. The protocol
	// keeps the request and later calls the engine's Delivered, Resend or GiveUp
	// with it, exactly once.
	Held
	// Stopped, for a whole request only: Send's ctx ended. The documents are given
	// up (their batches redelivered), and so is the rest of the delivery.
	Stopped
)

// Result is what Send reports.
type Result struct {
	// Outcome of every document of the request, unless Docs is set.
	Outcome Outcome
	// Docs, when not nil, is the outcome of each document of the request, in order
	// (Delivered, Duplicate, Retry, DeadLetter or Resend).
	Docs []DocOutcome
	// RetryAfter, with Retry, is the least wait before the next attempt (a server's
	// Retry-After); the backoff's cap still applies.
	RetryAfter time.Duration
	// Reason, with DeadLetter or Split, is the dead letter's reason as an operator
	// will read it.
	Reason string
}

// DocOutcome is what became of one document of a request.
type DocOutcome struct {
	Outcome Outcome
	// Reason, with DeadLetter, is the dead letter's reason.
	Reason string
}

// Request is one request's worth of documents. The engine owns it, except that a
// protocol whose Send answered Held keeps it until it hands it back.
type Request struct {
	src  []byte // the body the documents were framed in
	docs []doc
}

// Len is the number of documents in r.
func (r *Request) Len() int { return len(r.docs) }

// doc is one framed document: src[start:end] is its framing, the document's own
// bytes at src[doc:docEnd].
type doc struct {
	start, doc, docEnd, end int32
	tr                      *tracker
}

// Config is what an Engine needs besides its protocol.
type Config struct {
	// Name prefixes the engine's log messages and errors ("elasticsearch").
	Name string
	// Sink is the sink's name, part of its dead letters' IDs.
	Sink string
	// MaxBytes, MaxEvents and MaxWait bound a request: it is sent when it holds
	// MaxEvents documents or MaxBytes of body, or when its first document is
	// MaxWait old.
	MaxBytes  int
	MaxEvents int
	MaxWait   time.Duration
	// Overhead is about the bytes Frame adds to a document; a request is sent
	// before a document would take it past MaxBytes.
	Overhead int
	// MaxInFlight is the number of requests under way at once.
	MaxInFlight int
	// Backoff spaces the attempts at documents that failed transiently.
	Backoff Backoff
	Log     *slog.Logger
	// Counters count sent documents, retries, dead letters and duplicates.
	Counters *component.Counters
	// DeadLetter stores documents the destination refused for good; without it,
	// their batches are redelivered instead.
	DeadLetter func(ctx context.Context, letters ...component.Letter) error
}

// Backoff is an exponential backoff with jitter, from Initial up to Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// Delay is the wait before attempt+1 (attempt counts from 0): Initial<<attempt,
// capped at Max, of which half is random so that senders on many nodes do not
// retry in step; and at least hint (a server's Retry-After), but never more than
// Max.
func (b Backoff) Delay(attempt int, hint time.Duration) time.Duration {
	d := b.Initial << min(attempt, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	d = d/2 + rand.N(d/2+1)
	return min(max(d, hint), b.Max)
}

// RetryAfter reads an HTTP Retry-After header given in seconds, as a hint for
// Delay: 0 when absent or a date, at most an hour.
func RetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}
