package s3sink

import (
	"github.com/vigil-sec/vigil/internal/event"
)

// encoder turns NDJSON batches into one object's bytes. It is used by one goroutine
// at a time.
type encoder interface {
	// write adds the documents of one batch (NDJSON, each line ending in '\n').
	write(docs []byte) error
	// finish returns the whole object; the encoder is not used afterwards.
	finish() ([]byte, error)
	ext() string
	contentType() string
}

func (s *Sink) newEncoder(dataset string) (encoder, error) {
	switch s.cfg.Encoding {
	case "parquet":
		return newParquetEncoder(dataset, s.cfg.compression())
	default:
		return newNDJSONEncoder(s.cfg.compression())
	}
}

// ndjsonEncoder compresses each batch as it comes into a frame of its own (a gzip
// member, a zstd frame), so an object's memory is its compressed size; a batch that
// came compressed as the object is (writeFrame) is appended as it is. The frames
// one after another are one valid .ndjson.gz or .ndjson.zst object.
type ndjsonEncoder struct {
	buf       []byte
	fe        *event.FrameEncoder
	extension string
}

// ndjsonLevel is the level of the frames the sink compresses itself: gzip's and
// zstd's default levels (the object store keeps them for long).
func ndjsonLevel(compression string) int {
	if compression == event.EncodingZstd {
		return 3
	}
	return 6
}

func newNDJSONEncoder(compression string) (*ndjsonEncoder, error) {
	fe, err := event.NewFrameEncoder(compression, ndjsonLevel(compression))
	if err != nil {
		return nil, err
	}
	e := &ndjsonEncoder{fe: fe, extension: ".ndjson.gz"}
	if compression == event.EncodingZstd {
		e.extension = ".ndjson.zst"
	}
	return e, nil
}

func (e *ndjsonEncoder) write(docs []byte) error {
	e.buf = e.fe.Append(e.buf, docs)
	return nil
}

// writeFrame appends a batch compressed in the object's compression, as it is.
func (e *ndjsonEncoder) writeFrame(frame []byte) {
	e.buf = append(e.buf, frame...)
}

func (e *ndjsonEncoder) finish() ([]byte, error) { return e.buf, nil }

func (e *ndjsonEncoder) ext() string         { return e.extension }
func (e *ndjsonEncoder) contentType() string { return "application/x-ndjson" }
