package threshold

import (
	"encoding/binary"
	"errors"
	"math"
)

// sample is what the processor sends the aggregator for one event: its time, id,
// group key and the values of the fields the rule aggregates.
type sample struct {
	t     int64 // @timestamp, Unix nanoseconds
	id    string
	group []string
	nums  []float64 // per numeric field; NaN when the event has no number there
	strs  []string  // per distinct field
	has   []bool    // per distinct field: whether the event has it
}

// appendSample encodes s: t as a varint, then id, group values, numbers (8 bytes
// each) and distinct values (a presence byte and a string), strings
// uvarint-length-prefixed.
func appendSample(b []byte, s *sample) []byte {
	b = binary.AppendVarint(b, s.t)
	b = appendStr(b, s.id)
	b = binary.AppendUvarint(b, uint64(len(s.group)))
	for _, g := range s.group {
		b = appendStr(b, g)
	}
	b = binary.AppendUvarint(b, uint64(len(s.nums)))
	for _, f := range s.nums {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	b = binary.AppendUvarint(b, uint64(len(s.strs)))
	for i, v := range s.strs {
		if !s.has[i] {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = appendStr(b, v)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errSample = errors.New("aggregation sample: malformed")

// decodeSample reads a sample encoded by appendSample into s (reusing its slices).
func decodeSample(b []byte, s *sample) error {
	d := decoder{b: b}
	s.t = d.varint()
	s.id = d.str()
	n := d.count()
	s.group = s.group[:0]
	for range n {
		s.group = append(s.group, d.str())
	}
	n = d.count()
	s.nums = s.nums[:0]
	for range n {
		if len(d.b) < 8 {
			d.err = errSample
			break
		}
		s.nums = append(s.nums, math.Float64frombits(binary.LittleEndian.Uint64(d.b)))
		d.b = d.b[8:]
	}
	n = d.count()
	s.strs, s.has = s.strs[:0], s.has[:0]
	for range n {
		if len(d.b) < 1 {
			d.err = errSample
			break
		}
		present := d.b[0] == 1
		d.b = d.b[1:]
		v := ""
		if present {
			v = d.str()
		}
		s.strs, s.has = append(s.strs, v), append(s.has, present)
	}
	return d.err
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = errSample
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) count() int {
	v, k := binary.Uvarint(d.b)
	if k <= 0 || v > uint64(len(d.b)) {
		d.err = errSample
		d.b = nil
		return 0
	}
	d.b = d.b[k:]
	return int(v)
}

func (d *decoder) str() string {
	n := d.count()
	if n > len(d.b) {
		d.err = errSample
		d.b = nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
