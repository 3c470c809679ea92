package event

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func ndjsonBatch(k, n int) []byte {
	var b []byte
	for i := range n {
		b = fmt.Appendf(b, `{"@timestamp":"2026-12-07T10:00:00Z","message":"batch %d event %d from host%d","n":%d}`+"\n", k, i, i%7, i)
	}
	return b
}

// Each batch decodes back from its frame, and the frames of a file, appended one
// after another, read back as one stream with the format's ordinary reader: what
// lets the archive write frames as they crossed the stream.
func TestFramesRoundTripAndConcatenate(t *testing.T) {
	readers := map[string]func(io.Reader) (io.Reader, error){
		EncodingGzip: func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
		EncodingZstd: func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) },
	}
	for _, enc := range []string{EncodingS2, EncodingGzip, EncodingZstd} {
		for _, level := range []int{1, 5, 9} {
			t.Run(fmt.Sprintf("%s_%d", enc, level), func(t *testing.T) {
				e, err := NewFrameEncoder(enc, level)
				if err != nil {
					t.Fatal(err)
				}
				if e.Encoding() != enc {
					t.Fatalf("encoding %q", e.Encoding())
				}
				var d FrameDecoder
				var file, all []byte
				prefix := []byte("kept")
				for k := range 3 {
					docs := ndjsonBatch(k, 500+k*100)
					all = append(all, docs...)
					out := e.Append(bytes.Clone(prefix), docs)
					if !bytes.HasPrefix(out, prefix) {
						t.Fatalf("batch %d: Append lost what dst held", k)
					}
					frame := out[len(prefix):]
					if len(frame) >= len(docs)/2 {
						t.Errorf("batch %d: %d bytes compressed to %d", k, len(docs), len(frame))
					}
					got, err := d.Decode(make([]byte, 0, 16), frame, enc)
					if err != nil {
						t.Fatalf("batch %d: %v", k, err)
					}
					if !bytes.Equal(got, docs) {
						t.Fatalf("batch %d: decoded %d bytes, want %d", k, len(got), len(docs))
					}
					file = append(file, frame...)
				}
				newReader := readers[enc]
				if newReader == nil {
					return // S2 blocks do not concatenate; no archive writes them
				}
				r, err := newReader(bytes.NewReader(file))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, all) {
					t.Fatalf("the frames read as one stream give %d bytes, want %d", len(got), len(all))
				}
			})
		}
	}
}

func TestFrameEncoderRefusesUnknownEncoding(t *testing.T) {
	if _, err := NewFrameEncoder("lz4", 1); err == nil || !strings.Contains(err.Error(), "lz4") {
		t.Fatalf("err %v", err)
	}
	var d FrameDecoder
	if _, err := d.Decode(nil, []byte("x"), "lz4"); err == nil {
		t.Fatal("decoded a body of an unknown encoding")
	}
}

// A body that would decompress past 64 MiB is refused, whatever its trailer says.
func TestFrameDecodeBoundsSize(t *testing.T) {
	zeros := make([]byte, maxDecoded+1<<10)
	for _, enc := range []string{EncodingGzip, EncodingZstd} {
		e, err := NewFrameEncoder(enc, 1)
		if err != nil {
			t.Fatal(err)
		}
		body := e.Append(nil, zeros)
		if enc == EncodingGzip {
			// A lying trailer: says 10 bytes.
			copy(body[len(body)-4:], []byte{10, 0, 0, 0})
		}
		var d FrameDecoder
		if out, err := d.Decode(nil, body, enc); err == nil {
			t.Errorf("%s: decoded %d bytes, want an error", enc, len(out))
		}
	}
}

// FuzzFrameDecode checks that no body makes the decoder panic or hand out more than
// it allows, in any encoding, and that what decodes encodes back to the same
// documents.
func FuzzFrameDecode(f *testing.F) {
	for _, enc := range []string{EncodingS2, EncodingGzip, EncodingZstd} {
		e, err := NewFrameEncoder(enc, 1)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc, e.Append(nil, ndjsonBatch(0, 20)))
		f.Add(enc, []byte{})
	}
	f.Add(EncodingGzip, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, enc string, body []byte) {
		var d FrameDecoder
		out, err := d.Decode(nil, body, enc)
		if err != nil {
			return
		}
		if len(out) > maxDecoded {
			t.Fatalf("decoded %d bytes", len(out))
		}
		if !ValidEncoding(enc) {
			if enc != "" {
				t.Fatalf("decoded a body of encoding %q", enc)
			}
			enc = EncodingS2
		}
		e, err := NewFrameEncoder(enc, 1)
		if err != nil {
			t.Fatal(err)
		}
		again, err := d.Decode(nil, e.Append(nil, out), enc)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("re-encoded: %v, %d bytes, want %d", err, len(again), len(out))
		}
	})
}
