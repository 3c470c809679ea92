package event

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
)

func collectRaw(t *testing.T, dst, body []byte) ([][]byte, []byte, error) {
	t.Helper()
	var recs [][]byte
	buf, err := DecodeRaw(dst, body, func(i int, rec []byte) error {
		if i != len(recs) {
			t.Fatalf("index %d, want %d", i, len(recs))
		}
		recs = append(recs, bytes.Clone(rec))
		return nil
	})
	return recs, buf, err
}

func TestRawBatchRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		give [][]byte
	}{
		{"none", nil},
		{"one", [][]byte{[]byte(`{"a":1}`)}},
		{"empty records", [][]byte{{}, []byte("x"), {}, {}}},
		{"binary", [][]byte{{0, 1, 2, 0xff}, []byte("\n\r\n")}},
		{"long record (multi-byte length)", [][]byte{bytes.Repeat([]byte("y"), 300), bytes.Repeat([]byte("z"), 70000)}},
		{"many", func() [][]byte {
			var r [][]byte
			for i := 0; i < 1000; i++ {
				r = append(r, []byte(fmt.Sprintf("record %d", i)))
			}
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b RawBatch
			size := 0
			for _, r := range tt.give {
				b.Add(r)
				size += len(r)
			}
			if b.Len() != len(tt.give) {
				t.Errorf("Len = %d, want %d", b.Len(), len(tt.give))
			}
			if b.Size() < size {
				t.Errorf("Size = %d, less than the %d record bytes", b.Size(), size)
			}
			body := b.Encode()
			got, _, err := collectRaw(t, nil, body)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.give) {
				t.Fatalf("got %d records, want %d", len(got), len(tt.give))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.give[i]) {
					t.Errorf("record %d = %q, want %q", i, got[i], tt.give[i])
				}
			}
			// Decoding into a large enough buffer reuses it.
			dst := make([]byte, 0, b.Size()+16)
			_, buf, err := collectRaw(t, dst, body)
			if err != nil {
				t.Fatal(err)
			}
			if b.Size() > 0 && &buf[:1][0] != &dst[:1][0] {
				t.Error("DecodeRaw did not reuse dst")
			}
			// Reset keeps nothing but the buffer.
			b.Reset()
			if b.Len() != 0 || b.Size() != 0 {
				t.Errorf("after Reset: Len %d Size %d", b.Len(), b.Size())
			}
			got, _, err = collectRaw(t, nil, b.Encode())
			if err != nil || len(got) != 0 {
				t.Errorf("empty batch: %d records, %v", len(got), err)
			}
		})
	}
}

func TestRawBatchAddCopies(t *testing.T) {
	var b RawBatch
	rec := []byte("abc")
	b.Add(rec)
	rec[0] = 'X'
	got, _, err := collectRaw(t, nil, b.Encode())
	if err != nil || string(got[0]) != "abc" {
		t.Errorf("got %q, %v: Add must copy", got, err)
	}
}

func TestDecodeRawStopsOnCallbackError(t *testing.T) {
	var b RawBatch
	for i := 0; i < 5; i++ {
		b.Add([]byte{byte(i)})
	}
	stop := errors.New("stop")
	calls := 0
	_, err := DecodeRaw(nil, b.Encode(), func(i int, _ []byte) error {
		calls++
		if i == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("err %v after %d calls, want stop after 3", err, calls)
	}
}

func TestDecodeRawCorrupt(t *testing.T) {
	var good RawBatch
	good.Add([]byte("hello"))
	good.Add([]byte("world"))
	body := good.Encode()

	tests := []struct {
		name    string
		give    []byte
		wantErr string
	}{
		{"nil body", nil, "batch:"},
		{"garbage", []byte("not s2 at all"), "batch:"},
		{"truncated", body[:len(body)-3], "batch:"},
		{"truncated header", []byte{0xff}, "batch:"},
		{"length prefix past end", s2.Encode(nil, []byte{10, 'a', 'b'}), "record 0: bad length prefix"},
		{"second prefix past end", s2.Encode(nil, []byte{1, 'a', 5, 'b'}), "record 1: bad length prefix"},
		{"unterminated uvarint", s2.Encode(nil, []byte{1, 'a', 0x80}), "record 1: bad length prefix"},
		{"uvarint overflow", s2.Encode(nil, bytes.Repeat([]byte{0xff}, 11)), "record 0: bad length prefix"},
		{"huge claimed size", []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0}, "batch:"},
		{"size over 64 MiB", append(appendUvarint(nil, 65<<20), 0), "over 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := collectRaw(t, nil, tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if _, err := Decompress(nil, tt.give); err == nil && strings.HasPrefix(tt.wantErr, "batch") {
				t.Errorf("Decompress accepted it")
			}
		})
	}
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func TestCompressDecompress(t *testing.T) {
	for _, give := range [][]byte{nil, []byte("{}\n"), bytes.Repeat([]byte(`{"a":"b"}`+"\n"), 10000)} {
		body := Compress(give)
		got, err := Decompress(nil, body)
		if err != nil || !bytes.Equal(got, give) {
			t.Errorf("round trip of %d bytes: got %d bytes, %v", len(give), len(got), err)
		}
		dst := make([]byte, len(give)+10)
		got, err = Decompress(dst, body)
		if err != nil || !bytes.Equal(got, give) {
			t.Errorf("round trip into dst: %v", err)
		}
	}
}

func TestEachLine(t *testing.T) {
	tests := []struct {
		give string
		want []string
	}{
		{"", nil},
		{"\n\n", nil},
		{"a", []string{"a"}},
		{"a\n", []string{"a"}},
		{"a\nb\n", []string{"a", "b"}},
		{"\na\n\n\nb", []string{"a", "b"}},
		{"a\r\nb", []string{"a\r", "b"}}, // lines are not trimmed: NDJSON we write has bare '\n'
	}
	for _, tt := range tests {
		var got []string
		err := EachLine([]byte(tt.give), func(doc []byte) error {
			got = append(got, string(doc))
			return nil
		})
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
			t.Errorf("EachLine(%q) = %q, %v; want %q", tt.give, got, err, tt.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := EachLine([]byte("a\nb\nc"), func([]byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("EachLine did not stop at the first error: %v after %d", err, n)
	}
}
