package event

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
)

// Batches cross the stream compressed with S2 (block format). A raw batch is a sequence
// of records, each preceded by its length as a uvarint; an event batch is NDJSON: one
// ECS document per line, ready for sinks to frame without decoding.

// MaxBatchBytes is the uncompressed size a producer aims a batch at. Messages stay under
// JetStream's default 1 MiB max_payload once compressed, and with room for headers even
// when the data does not compress.
const MaxBatchBytes = 900 << 10

// RawBatch builds the body of an intake message. The zero value is ready to use.
type RawBatch struct {
	buf   []byte
	count int
}

// Add appends one record; the batch copies it.
func (b *RawBatch) Add(rec []byte) {
	b.buf = binary.AppendUvarint(b.buf, uint64(len(rec)))
	b.buf = append(b.buf, rec...)
	b.count++
}

// Len is the number of records added; Size the uncompressed bytes.
func (b *RawBatch) Len() int  { return b.count }
func (b *RawBatch) Size() int { return len(b.buf) }

// Encode returns the compressed body. The result is a new slice owned by the caller.
func (b *RawBatch) Encode() []byte { return s2.Encode(nil, b.buf) }

// EncodeTo returns the compressed body in dst's memory when its capacity is at least
// MaxEncodedLen(Size()), else in a new slice.
func (b *RawBatch) EncodeTo(dst []byte) []byte { return s2.Encode(dst[:cap(dst)], b.buf) }

// Use makes the batch build in buf's memory (emptied), such as a buffer from a pool;
// Reset keeps it. Buffer returns the memory back.
func (b *RawBatch) Use(buf []byte) { b.buf, b.count = buf[:0], 0 }

// Buffer returns the batch's memory, for returning it to a pool.
func (b *RawBatch) Buffer() []byte { return b.buf }

// MaxEncodedLen is the largest compressed size of n uncompressed bytes.
func MaxEncodedLen(n int) int { return s2.MaxEncodedLen(n) }

// Reset empties the batch, keeping its buffer.
func (b *RawBatch) Reset() { b.buf, b.count = b.buf[:0], 0 }

// DecodeRaw decompresses an intake message body into dst (reused when large enough) and
// calls fn for each record in order. Records alias the returned buffer.
func DecodeRaw(dst, body []byte, fn func(index int, rec []byte) error) ([]byte, error) {
	data, err := decompress(dst, body)
	if err != nil {
		return dst, err
	}
	buf := data
	for i := 0; len(data) > 0; i++ {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return buf, fmt.Errorf("raw batch: record %d: bad length prefix", i)
		}
		rec := data[k : k+int(n)]
		data = data[k+int(n):]
		if err := fn(i, rec); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// Compress returns body compressed for the stream; used for event batches, whose
// uncompressed form is NDJSON.
func Compress(ndjson []byte) []byte { return s2.Encode(nil, ndjson) }

// CompressTo is Compress into dst's memory when its capacity is at least
// MaxEncodedLen(len(ndjson)), else into a new slice.
func CompressTo(dst, ndjson []byte) []byte { return s2.Encode(dst[:cap(dst)], ndjson) }

// Decompress returns the NDJSON of an event batch body, decoding into dst when it is
// large enough.
func Decompress(dst, body []byte) ([]byte, error) { return decompress(dst, body) }

func decompress(dst, body []byte) ([]byte, error) {
	n, err := s2.DecodedLen(body)
	if err != nil {
		return dst, fmt.Errorf("batch: %w", err)
	}
	if n > 64<<20 {
		return dst, errors.New("batch: decoded size over 64 MiB")
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	out, err := s2.Decode(dst[:cap(dst)], body)
	if err != nil {
		return dst, fmt.Errorf("batch: %w", err)
	}
	return out, nil
}

// EachLine calls fn for every non-empty line of an NDJSON buffer.
func EachLine(ndjson []byte, fn func(doc []byte) error) error {
	for len(ndjson) > 0 {
		i := 0
		for i < len(ndjson) && ndjson[i] != '\n' {
			i++
		}
		line := ndjson[:i]
		if i < len(ndjson) {
			i++
		}
		ndjson = ndjson[i:]
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}
