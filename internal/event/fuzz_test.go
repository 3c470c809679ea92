package event

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeRaw checks that no intake body makes DecodeRaw panic, that every record
// it hands over lies within the decoded data, and that a batch rebuilt from those
// records decodes to the same records.
func FuzzDecodeRaw(f *testing.F) {
	var b RawBatch
	f.Add(b.Encode())
	b.Add(nil)
	b.Add([]byte(`{"a":1}`))
	b.Add(bytes.Repeat([]byte("x"), 200))
	f.Add(b.Encode())
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(Compress([]byte{5, 'a'}))
	f.Fuzz(func(t *testing.T, body []byte) {
		var recs [][]byte
		_, err := DecodeRaw(nil, body, func(_ int, rec []byte) error {
			recs = append(recs, bytes.Clone(rec))
			return nil
		})
		if err != nil {
			return
		}
		var again RawBatch
		for _, r := range recs {
			again.Add(r)
		}
		i := 0
		if _, err := DecodeRaw(make([]byte, 3), again.Encode(), func(_ int, rec []byte) error {
			if !bytes.Equal(rec, recs[i]) {
				t.Fatalf("record %d: %q after re-encoding, was %q", i, rec, recs[i])
			}
			i++
			return nil
		}); err != nil || i != len(recs) {
			t.Fatalf("re-encoded batch: %d of %d records, %v", i, len(recs), err)
		}
	})
}

// FuzzDecompress checks Decompress against Compress on arbitrary bytes and that it
// never panics on arbitrary bodies.
func FuzzDecompress(f *testing.F) {
	f.Add([]byte("{}\n"), []byte{})
	f.Add([]byte(nil), []byte{0})
	f.Add(bytes.Repeat([]byte(`{"a":"b"}`+"\n"), 50), []byte("\x00garbage"))
	f.Fuzz(func(t *testing.T, plain, body []byte) {
		_, _ = Decompress(nil, body)
		_, _ = Decompress(make([]byte, 0, 8), body)
		got, err := Decompress(nil, Compress(plain))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzAppendString checks that any string, valid UTF-8 or not, encodes to a valid JSON
// string that decodes back to it (invalid bytes as U+FFFD), in valid UTF-8 and without
// raw U+2028/U+2029.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "\xed\xa0\x80", "é✓𝄞", "\xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("AppendString(%q) = %s: not valid JSON", s, out)
		}
		var dec string
		if err := json.Unmarshal(out, &dec); err != nil || dec != validUTF8(s) {
			t.Fatalf("AppendString(%q) decodes to %q (%v)", s, dec, err)
		}
		if bytes.ContainsAny(out, "\u2028\u2029") {
			t.Fatalf("AppendString(%q) = %s: raw separator", s, out)
		}
		if ob := AppendStringBytes(nil, []byte(s)); !bytes.Equal(ob, out) {
			t.Fatalf("AppendStringBytes(%q) = %s, AppendString %s", s, ob, out)
		}
	})
}
