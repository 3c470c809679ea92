package event

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encodings of an event batch body on the events stream. S2 is the cheapest to
// compress and decompress. Gzip and zstd bodies are whole frames (a gzip member, a
// zstd frame): frames of one encoding appended one after another make a valid
// .ndjson.gz or .ndjson.zst file, so an archive whose compression matches writes
// them as they are, and the batch is compressed once on its way from the parser
// to the archive ("compress once").
const (
	EncodingS2   = "s2"
	EncodingGzip = "gzip"
	EncodingZstd = "zstd"
)

// maxDecoded bounds what one event batch body may decompress to (a corrupt or
// hostile body must not take the process's memory).
const maxDecoded = 64 << 20

// ValidEncoding reports whether enc names an encoding of event batch bodies.
func ValidEncoding(enc string) bool {
	return enc == EncodingS2 || enc == EncodingGzip || enc == EncodingZstd
}

// ZstdLevel maps a compression level from 1 (fastest) to 9 (smallest) onto zstd's
// four: 1 its fastest, 2-4 its default, 5-7 better and 8-9 its best compression.
func ZstdLevel(level int) zstd.EncoderLevel {
	switch {
	case level <= 1:
		return zstd.SpeedFastest
	case level >= 8:
		return zstd.SpeedBestCompression
	case level >= 5:
		return zstd.SpeedBetterCompression
	}
	return zstd.SpeedDefault
}

// FrameEncoder compresses event batches, each into a body of its own in one
// encoding and level. It keeps the compressor's state between batches; it is not
// safe for concurrent use.
type FrameEncoder struct {
	enc   string
	level int
	gz    *gzip.Writer
	zs    *zstd.Encoder
	out   appendWriter
}

// NewFrameEncoder returns an encoder for enc (EncodingS2, EncodingGzip or
// EncodingZstd) at level, 1 (fastest) to 9 (smallest); S2 has no levels.
func NewFrameEncoder(enc string, level int) (*FrameEncoder, error) {
	e := &FrameEncoder{enc: enc, level: level}
	var err error
	switch enc {
	case EncodingS2:
	case EncodingGzip:
		e.gz, err = gzip.NewWriterLevel(io.Discard, level)
	case EncodingZstd:
		// One goroutine: each processing worker has its own encoder. A 1 MiB window
		// covers a whole batch (MaxBatchBytes).
		e.zs, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(ZstdLevel(level)), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(1<<20))
	default:
		err = fmt.Errorf("event batch encoding %q: want s2, gzip or zstd", enc)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Encoding is the encoding of the bodies Append makes.
func (e *FrameEncoder) Encoding() string { return e.enc }

// Append appends ndjson, compressed as one body, to dst and returns the extended
// slice.
func (e *FrameEncoder) Append(dst, ndjson []byte) []byte {
	switch e.enc {
	case EncodingGzip:
		e.out.b = dst
		e.gz.Reset(&e.out)
		// Writes to memory do not fail.
		_, _ = e.gz.Write(ndjson)
		_ = e.gz.Close()
		dst, e.out.b = e.out.b, nil
		return dst
	case EncodingZstd:
		return e.zs.EncodeAll(ndjson, dst)
	}
	need := len(dst) + MaxEncodedLen(len(ndjson))
	if cap(dst) < need {
		dst = append(make([]byte, 0, need), dst...)
	}
	return append(dst, CompressTo(dst[len(dst):], ndjson)...)
}

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// FrameDecoder decompresses event batch bodies of any encoding. The zero value is
// ready to use; it keeps its decompressors between calls and is not safe for
// concurrent use.
type FrameDecoder struct {
	gz *gzip.Reader
	zs *zstd.Decoder
	rd bytes.Reader
}

// Decode returns the NDJSON of a body of encoding enc ("" is S2, what bodies
// without the header were), decoding into dst's memory when it is large enough.
func (d *FrameDecoder) Decode(dst, body []byte, enc string) ([]byte, error) {
	switch enc {
	case EncodingS2, "":
		return decompress(dst, body)
	case EncodingGzip:
		return d.gunzip(dst[:0], body)
	case EncodingZstd:
		if d.zs == nil {
			zs, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecoded))
			if err != nil {
				return dst, err
			}
			d.zs = zs
		}
		out, err := d.zs.DecodeAll(body, dst[:0])
		if err != nil {
			return dst, fmt.Errorf("batch: zstd: %w", err)
		}
		return out, nil
	}
	return dst, fmt.Errorf("batch: unknown encoding %q", enc)
}

func (d *FrameDecoder) gunzip(dst, body []byte) ([]byte, error) {
	d.rd.Reset(body)
	var err error
	if d.gz == nil {
		d.gz, err = gzip.NewReader(&d.rd)
	} else {
		err = d.gz.Reset(&d.rd)
	}
	if err != nil {
		return dst, fmt.Errorf("batch: gzip: %w", err)
	}
	// The trailer's size (modulo 2^32) sizes the buffer; the limit holds whatever
	// it says.
	if n := len(body); n >= 4 && cap(dst) == 0 {
		if size := int(uint32(body[n-4]) | uint32(body[n-3])<<8 | uint32(body[n-2])<<16 | uint32(body[n-1])<<24); size <= maxDecoded {
			dst = make([]byte, 0, size)
		}
	}
	buf := bytes.NewBuffer(dst)
	n, err := buf.ReadFrom(io.LimitReader(d.gz, maxDecoded+1))
	if err != nil {
		return dst, fmt.Errorf("batch: gzip: %w", err)
	}
	if n > maxDecoded {
		return dst, errors.New("batch: decoded size over 64 MiB")
	}
	return buf.Bytes(), nil
}
