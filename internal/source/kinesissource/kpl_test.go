package kinesissource

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"testing"
)

// pb builds protobuf bytes by hand: the reader must not depend on a generated
// encoder.
type pb []byte

func (b pb) varint(field int, v uint64) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3)
	return binary.AppendUvarint(b, v)
}

func (b pb) bytes(field int, v []byte) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// aggregate frames an AggregatedRecord as the KPL does: magic, message, MD5.
func aggregate(msg []byte) []byte {
	sum := md5.Sum(msg)
	out := append(append([]byte{}, kplMagic...), msg...)
	return append(out, sum[:]...)
}

func sampleAggregated() []byte {
	tag := pb(nil).bytes(1, []byte("k")).bytes(2, []byte("v"))
	msg := pb(nil).
		bytes(1, []byte("pk-a")).bytes(1, []byte("pk-b")).
		bytes(2, []byte("123456")).
		bytes(3, pb(nil).varint(1, 0).bytes(3, []byte(`{"n":1}`))).
		bytes(3, pb(nil).varint(1, 1).varint(2, 0).bytes(3, []byte(`{"n":2}`)).bytes(4, tag)).
		bytes(3, pb(nil).varint(1, 0).bytes(3, nil))
	return aggregate(msg)
}

func TestDeaggregate(t *testing.T) {
	badSum := sampleAggregated()
	badSum[len(badSum)-1] ^= 1
	tests := []struct {
		name string
		give []byte
		want []string
	}{
		{"plain record", []byte(`{"plain":true}`), []string{`{"plain":true}`}},
		{"aggregated", sampleAggregated(), []string{`{"n":1}`, `{"n":2}`, ``}},
		{"bad checksum is one record", badSum, []string{string(badSum)}},
		{"magic only", kplMagic, []string{string(kplMagic)}},
		{"partition key index out of range", aggregate(pb(nil).bytes(1, []byte("a")).bytes(3, pb(nil).varint(1, 1).bytes(3, []byte("x")))),
			nil},
		{"record without data", aggregate(pb(nil).bytes(1, []byte("a")).bytes(3, pb(nil).varint(1, 0))), nil},
		{"truncated length", aggregate([]byte{0x1a, 0x05, 0x08}), nil},
		{"no records", aggregate(pb(nil).bytes(1, []byte("a"))), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := deaggregate(tt.give)
			want := tt.want
			if want == nil { // malformed: the whole record, as it came
				want = []string{string(tt.give)}
			}
			if len(got) != len(want) {
				t.Fatalf("got %d records %q, want %q", len(got), got, want)
			}
			for i := range got {
				if !bytes.Equal(got[i], []byte(want[i])) {
					t.Errorf("record %d: got %q, want %q", i, got[i], want[i])
				}
			}
		})
	}
}
