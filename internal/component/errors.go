package component

import "errors"

// Errors a publish can end in. Sources map them to wire statuses: ErrFull to 429,
// ErrUnavailable to 503 (both with Retry-After) and ErrTooLarge to 413; the HTTP
// sources do it in one place, httpserver.Classify.
var (
	// ErrFull means the stream is at its limit and refuses new data until consumers
	// catch up; nothing old was discarded to make room.
	ErrFull = errors.New("stream full")
	// ErrUnavailable means the stream could not confirm the write (server down,
	// timeout, no quorum). The data may or may not be stored; the sender must retry.
	ErrUnavailable = errors.New("stream unavailable")
	// ErrTooLarge means one message exceeds the server's max payload.
	ErrTooLarge = errors.New("message larger than the stream's max payload")
)
