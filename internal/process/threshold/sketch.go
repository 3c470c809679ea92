package threshold

import (
	"math"
	"slices"
)

// sketch is a log-bucketed histogram (the DDSketch layout): a value v > 0 counts in
// bucket ceil(log_γ v), γ = 1.02, and a quantile is read back as the bucket's
// midpoint 2γ^i/(γ+1), within (γ−1)/(γ+1) < 1% of the true value of the same rank.
// Values ≤ 0 count as 0. Buckets are counts, so sketches merge by adding and a
// sliding window drops an expired pane by subtracting; its size grows with the
// range of values (about 115 buckets per factor of 10), not with their number.
type sketch struct {
	B map[int32]int64 `json:"b,omitempty"`
	Z int64           `json:"z,omitempty"` // values ≤ 0
	N int64           `json:"n"`
}

const sketchGamma = 1.02

var logGamma = math.Log(sketchGamma)

func (s *sketch) add(v float64) {
	s.N++
	if !(v > 0) || math.IsInf(v, 0) {
		s.Z++
		return
	}
	if s.B == nil {
		s.B = map[int32]int64{}
	}
	s.B[int32(math.Ceil(math.Log(v)/logGamma))]++
}

// merge adds o's counts times sign (+1 to merge, −1 to subtract).
func (s *sketch) merge(o *sketch, sign int64) {
	if o == nil {
		return
	}
	s.N += sign * o.N
	s.Z += sign * o.Z
	for k, c := range o.B {
		if s.B == nil {
			s.B = map[int32]int64{}
		}
		if n := s.B[k] + sign*c; n != 0 {
			s.B[k] = n
		} else {
			delete(s.B, k)
		}
	}
}

// quantile returns the value of rank q·(n−1) (0-based), NaN when empty.
func (s *sketch) quantile(q float64) float64 {
	if s == nil || s.N <= 0 {
		return math.NaN()
	}
	rank := int64(q * float64(s.N-1))
	if rank < s.Z {
		return 0
	}
	keys := make([]int32, 0, len(s.B))
	for k := range s.B {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := s.Z
	for _, k := range keys {
		seen += s.B[k]
		if seen > rank {
			return 2 * math.Pow(sketchGamma, float64(k)) / (sketchGamma + 1)
		}
	}
	return 2 * math.Pow(sketchGamma, float64(keys[len(keys)-1])) / (sketchGamma + 1)
}
