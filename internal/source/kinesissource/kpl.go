package kinesissource

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
)

// kplMagic starts a record the Kinesis Producer Library aggregated; the protobuf
// AggregatedRecord follows, then the MD5 of the protobuf bytes.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// deaggregate returns the user records in rec. A record that is not aggregated, or
// whose checksum or encoding is wrong, is one user record: rec itself, as the KCL
// does. The returned slices alias rec.
func deaggregate(rec []byte) [][]byte {
	if len(rec) < len(kplMagic)+md5.Size || !bytes.HasPrefix(rec, kplMagic) {
		return [][]byte{rec}
	}
	msg := rec[len(kplMagic) : len(rec)-md5.Size]
	sum := md5.Sum(msg)
	if !bytes.Equal(sum[:], rec[len(rec)-md5.Size:]) {
		return [][]byte{rec}
	}
	out, err := parseAggregated(msg)
	if err != nil {
		return [][]byte{rec}
	}
	return out
}

var errProto = errors.New("malformed protobuf")

// parseAggregated reads the data of each records entry of an AggregatedRecord:
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// Partition keys and tags are not needed: the intake stream keeps no per-record
// metadata. It checks that each record's key indexes point into the tables.
func parseAggregated(b []byte) ([][]byte, error) {
	var out [][]byte
	var keys, hashKeys uint64
	type ref struct{ pk, ehk uint64 }
	var refs []ref
	for len(b) > 0 {
		field, wire, val, payload, rest, err := next(b)
		if err != nil {
			return nil, err
		}
		b = rest
		switch {
		case field == 1 && wire == 2:
			keys++
		case field == 2 && wire == 2:
			hashKeys++
		case field == 3 && wire == 2:
			data, r, err := parseRecord(payload)
			if err != nil {
				return nil, err
			}
			out = append(out, data)
			refs = append(refs, r)
		}
		_ = val // other fields are skipped, as protobuf does
	}
	if len(out) == 0 {
		return nil, errors.New("aggregated record without records")
	}
	for _, r := range refs {
		if r.pk >= keys || (r.ehk != noIndex && r.ehk >= hashKeys) {
			return nil, errors.New("key index out of range")
		}
	}
	return out, nil
}

const noIndex = ^uint64(0)

func parseRecord(b []byte) ([]byte, struct{ pk, ehk uint64 }, error) {
	r := struct{ pk, ehk uint64 }{pk: noIndex, ehk: noIndex}
	var data []byte
	hasData := false
	for len(b) > 0 {
		field, wire, val, payload, rest, err := next(b)
		if err != nil {
			return nil, r, err
		}
		b = rest
		switch {
		case field == 1 && wire == 0:
			r.pk = val
		case field == 2 && wire == 0:
			r.ehk = val
		case field == 3 && wire == 2:
			data, hasData = payload, true
		}
	}
	if r.pk == noIndex || !hasData {
		return nil, r, errors.New("record without partition_key_index or data")
	}
	if data == nil {
		data = []byte{}
	}
	return data, r, nil
}

// next reads one field: its number, wire type, value (varint) or payload
// (length-delimited), and the bytes after it.
func next(b []byte) (field uint64, wire int, val uint64, payload, rest []byte, err error) {
	key, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, 0, nil, nil, errProto
	}
	b = b[n:]
	field, wire = key>>3, int(key&7)
	if field == 0 {
		return 0, 0, 0, nil, nil, errProto
	}
	switch wire {
	case 0:
		val, n = binary.Uvarint(b)
		if n <= 0 {
			return 0, 0, 0, nil, nil, errProto
		}
		return field, wire, val, nil, b[n:], nil
	case 1:
		if len(b) < 8 {
			return 0, 0, 0, nil, nil, errProto
		}
		return field, wire, 0, nil, b[8:], nil
	case 2:
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return 0, 0, 0, nil, nil, errProto
		}
		b = b[n:]
		return field, wire, 0, b[:l:l], b[l:], nil
	case 5:
		if len(b) < 4 {
			return 0, 0, 0, nil, nil, errProto
		}
		return field, wire, 0, nil, b[4:], nil
	}
	return 0, 0, 0, nil, nil, errProto
}
