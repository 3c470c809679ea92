package event

import (
	"slices"
	"strings"
)

// Encoder turns events into ECS JSON documents: dotted keys become nested objects, keys
// come out sorted, and each document is one line. It keeps scratch space between calls,
// so reuse one Encoder per goroutine; it is not safe for concurrent use.
//
// Conflicts are resolved without losing data: when one key holds a scalar and also has
// leaves below it ("event" and "event.dataset"), the scalar is written as "value" inside
// the object, unless the event also sets "event.value" (or leaves below it), which then
// wins so that no object has a member twice; when a key is set twice with Add, the last
// value wins.
type Encoder struct {
	order []int32
	tmp   []int32 // merge scratch
	runs  []int   // starts of the ascending runs of the fields, then len(fields)
	ends  []int   // see Append
}

// maxMergeRuns is how many ascending runs Append merges rather than sorts. A
// parser's fields are one run or a few, the pipeline's own fields (@timestamp,
// agent.*, ecs.*, event.*) one more: merging them costs a comparison per field
// and run, where a sort costs n log n comparisons of dotted paths.
const maxMergeRuns = 8

// Append appends e as one JSON object (no trailing newline) to dst and returns it.
func (enc *Encoder) Append(dst []byte, e *Event) []byte {
	fields := e.Fields
	enc.order = enc.order[:0]
	for i := range fields {
		enc.order = append(enc.order, int32(i))
	}
	// Parsers usually add fields in order already; then sorting and de-duplicating
	// (strictly ascending keys are unique) are skipped.
	if !strictlySorted(fields) {
		enc.sortOrder(fields)
		// With Add a key may appear twice; keep only the last setting.
		order := enc.order[:0]
		for i, idx := range enc.order {
			if i+1 < len(enc.order) && fields[enc.order[i+1]].Key == fields[idx].Key {
				continue
			}
			order = append(order, idx)
		}
		enc.order = order
	}
	order := enc.order

	// ends[l] is where the l-th open object's segment ends in prev: the offset of the
	// '.' after it, or len(prev) for a scalar that became an object.
	enc.ends = enc.ends[:0]
	prev := ""
	dst = append(dst, '{')
	first := true // no member written yet in the innermost open object
	for i, idx := range order {
		key := fields[idx].Key
		// Close the objects this key is not inside.
		lcp := commonPrefix(prev, key)
		depth := 0
		for depth < len(enc.ends) {
			end := enc.ends[depth]
			if end > lcp || end >= len(key) || key[end] != '.' {
				break
			}
			depth++
		}
		for len(enc.ends) > depth {
			enc.ends = enc.ends[:len(enc.ends)-1]
			dst = append(dst, '}')
			first = false
		}
		// Open the objects this key needs.
		pos := 0
		if depth > 0 {
			pos = enc.ends[depth-1] + 1
		}
		for {
			dot := strings.IndexByte(key[pos:], '.')
			if dot < 0 {
				break
			}
			if !first {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, key[pos:pos+dot])
			dst = append(dst, ':', '{')
			first = true
			enc.ends = append(enc.ends, pos+dot)
			pos += dot + 1
		}
		if !first {
			dst = append(dst, ',')
		}
		prev = key
		// A scalar whose key is also a parent of the next key becomes "value" inside
		// that object.
		if i+1 < len(order) && isParent(key, fields[order[i+1]].Key) {
			dst = AppendString(dst, key[pos:])
			dst = append(dst, ':', '{')
			enc.ends = append(enc.ends, len(key))
			if hasValueChild(fields, order[i+1:], key) {
				// The event sets "<key>.value" itself: writing the scalar there too
				// would give the object the member "value" twice, a document
				// Elasticsearch rejects as a whole. The explicit field wins.
				first = true
				continue
			}
			dst = append(dst, `"value":`...)
		} else {
			dst = AppendString(dst, key[pos:])
			dst = append(dst, ':')
		}
		dst = fields[idx].Value.AppendJSON(dst)
		first = false
	}
	for range enc.ends {
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// sortOrder sorts enc.order (0..len(fields)-1) stably by key: by merging the
// fields' ascending runs when there are few, else by a sort.
func (enc *Encoder) sortOrder(fields []Field) {
	enc.runs = append(enc.runs[:0], 0)
	for i := 1; i < len(fields); i++ {
		if comparePaths(fields[i-1].Key, fields[i].Key) > 0 {
			if len(enc.runs) == maxMergeRuns {
				slices.SortStableFunc(enc.order, func(a, b int32) int {
					return comparePaths(fields[a].Key, fields[b].Key)
				})
				return
			}
			enc.runs = append(enc.runs, i)
		}
	}
	enc.runs = append(enc.runs, len(fields))
	// Merge each run into what the runs before it made; on equal keys the earlier
	// field goes first, as in a stable sort (the de-duplication keeps the last).
	merged := enc.order[:enc.runs[1]]
	for r := 1; r+1 < len(enc.runs); r++ {
		next := enc.order[enc.runs[r]:enc.runs[r+1]]
		out := enc.tmp[:0]
		i, j := 0, 0
		for i < len(merged) && j < len(next) {
			if comparePaths(fields[next[j]].Key, fields[merged[i]].Key) < 0 {
				out = append(out, next[j])
				j++
			} else {
				out = append(out, merged[i])
				i++
			}
		}
		out = append(out, merged[i:]...)
		out = append(out, next[j:]...)
		// out becomes the first runs of order; order's old memory the scratch.
		enc.tmp = enc.order[:0]
		enc.order = append(out, enc.order[enc.runs[r+1]:]...)
		merged = enc.order[:enc.runs[r+1]]
	}
}

// strictlySorted reports whether the keys are in encoding order without repeats.
func strictlySorted(fields []Field) bool {
	for i := 1; i < len(fields); i++ {
		if comparePaths(fields[i-1].Key, fields[i].Key) >= 0 {
			return false
		}
	}
	return true
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// hasValueChild reports whether one of the keys at order (sorted, starting right after
// parent) is parent+".value" or lies below it.
func hasValueChild(fields []Field, order []int32, parent string) bool {
	for _, idx := range order {
		k := fields[idx].Key
		if !isParent(parent, k) {
			return false
		}
		if rest := k[len(parent)+1:]; rest == "value" || strings.HasPrefix(rest, "value.") {
			return true
		}
	}
	return false
}

// isParent reports whether child lies below parent in the dotted hierarchy.
func isParent(parent, child string) bool {
	return len(child) > len(parent) && child[len(parent)] == '.' && child[:len(parent)] == parent
}

// comparePaths orders dotted paths segment by segment, so that every key below a prefix
// sorts next to the others below it: '.' compares lower than any other byte.
func comparePaths(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '.' {
			return -1
		}
		if cb == '.' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	return len(a) - len(b)
}
