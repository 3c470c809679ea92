package s3sink

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
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

// ndjsonEncoder compresses the documents as they come, so an object's memory is its
// compressed size.
type ndjsonEncoder struct {
	buf       bytes.Buffer
	w         io.WriteCloser
	extension string
}

func newNDJSONEncoder(compression string) (*ndjsonEncoder, error) {
	e := &ndjsonEncoder{}
	switch compression {
	case "zstd":
		// One encoder goroutine: objects are encoded in parallel across datasets
		// already, and the sink owns no goroutines it cannot stop.
		w, err := zstd.NewWriter(&e.buf, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		e.w, e.extension = w, ".ndjson.zst"
	default:
		w, err := gzip.NewWriterLevel(&e.buf, gzip.DefaultCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		e.w, e.extension = w, ".ndjson.gz"
	}
	return e, nil
}

func (e *ndjsonEncoder) write(docs []byte) error {
	_, err := e.w.Write(docs)
	return err
}

func (e *ndjsonEncoder) finish() ([]byte, error) {
	if err := e.w.Close(); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

func (e *ndjsonEncoder) ext() string         { return e.extension }
func (e *ndjsonEncoder) contentType() string { return "application/x-ndjson" }
