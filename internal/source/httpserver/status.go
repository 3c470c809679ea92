package httpserver

import (
	"errors"
	"net/http"

	"github.com/vigil-sec/vigil/internal/component"
)

// Failure is how an HTTP intake source answers a request it could not store: the
// status, whether the answer carries Retry-After (Config.RetryAfterSeconds), the
// reason the source counts it under and a message for the sender. The body is the
// source's own, in its protocol's error format, and may word the message in the
// protocol's terms; a protocol may answer another status where its senders read
// one differently (see the firehose and hec sources).
type Failure struct {
	Status     int
	RetryAfter bool
	Reason     string
	Message    string
}

// Classify maps an error of component.Intake (Store or DeadLetter) to its answer:
//
//   - component.ErrFull: 429 with Retry-After, "stream_full". The sender backs off.
//   - component.ErrTooLarge: 413, "too_large". One record is over the stream's
//     message size; sending it again cannot help.
//   - anything else: 503 with Retry-After, "stream_unavailable". That is
//     component.ErrUnavailable, a context canceled or past its deadline (the
//     client left, the source is shutting down, the answer is due), or an error
//     nobody planned for: retryable by default, since nothing of it was stored
//     for sure.
func Classify(err error) Failure {
	switch {
	case errors.Is(err, component.ErrFull):
		return Failure{Status: http.StatusTooManyRequests, RetryAfter: true, Reason: "stream_full",
			Message: "the intake stream is full; retry later"}
	case errors.Is(err, component.ErrTooLarge):
		return Failure{Status: http.StatusRequestEntityTooLarge, Reason: "too_large",
			Message: "a record is larger than the intake stream accepts"}
	default:
		return Failure{Status: http.StatusServiceUnavailable, RetryAfter: true, Reason: "stream_unavailable",
			Message: "the intake stream is unavailable; retry later"}
	}
}
