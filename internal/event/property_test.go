package event

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// segments are few, so that generated keys collide: the same key twice, a scalar that
// is also a parent, explicit ".value" children, empty segments.
var segments = []string{"a", "b", "value", "", "é", "x\"y", "a-b", "a!", "\n", "\u2028"}

func genKey() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(1, 4).Draw(t, "depth")
		segs := make([]string, n)
		for i := range segs {
			segs[i] = rapid.SampledFrom(segments).Draw(t, "seg")
		}
		return strings.Join(segs, ".")
	})
}

var rawValues = []string{`1`, `-2.5e3`, `"s"`, `null`, `true`, `[]`, `{}`, `[1,"a",{"b":null}]`, `{"k":{"l":[]}}`}

func genValue() *rapid.Generator[Value] {
	return rapid.Custom(func(t *rapid.T) Value {
		switch rapid.IntRange(0, 8).Draw(t, "kind") {
		case 0:
			return Value{}
		case 1:
			return String(rapid.String().Draw(t, "s"))
		case 2:
			return Bytes(rapid.SliceOf(rapid.Byte()).Draw(t, "b"))
		case 3:
			return Int(rapid.Int64().Draw(t, "n"))
		case 4:
			return Float(rapid.OneOf(rapid.Float64(), rapid.SampledFrom([]float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, 1e-7, 1e21})).Draw(t, "f"))
		case 5:
			return Bool(rapid.Bool().Draw(t, "bool"))
		case 6:
			sec := rapid.Int64Range(-62135596800, 253402300799).Draw(t, "sec") // years 1 to 9999
			ns := rapid.Int64Range(0, 999999999).Draw(t, "ns")
			off := rapid.IntRange(-14*60, 14*60).Draw(t, "offset")
			return Time(time.Unix(sec, ns).In(time.FixedZone("", off*60)))
		case 7:
			return Raw([]byte(rapid.SampledFrom(rawValues).Draw(t, "raw")))
		default:
			return Strings(rapid.SliceOf(rapid.String()).Draw(t, "ss"))
		}
	})
}

// TestEncodeProperty checks that any event encodes to one valid JSON object in which
// every leaf that survives the conflict rules is found at its dotted path.
func TestEncodeProperty(t *testing.T) {
	var enc Encoder // reused across cases on purpose
	rapid.Check(t, func(t *rapid.T) {
		var e Event
		n := rapid.IntRange(0, 25).Draw(t, "fields")
		for i := 0; i < n; i++ {
			e.Add(genKey().Draw(t, "key"), genValue().Draw(t, "value"))
		}
		doc := enc.Append(nil, &e)
		if !json.Valid(doc) {
			t.Fatalf("invalid JSON: %s", doc)
		}
		if bytes.ContainsAny(doc, "\n\u2028\u2029") {
			t.Fatalf("document is not one line: %q", doc)
		}
		noDuplicateMembers(t, doc)
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		var root map[string]any
		if err := dec.Decode(&root); err != nil {
			t.Fatal(err)
		}

		// The model: the last setting of each key wins.
		last := map[string]Value{}
		for _, f := range e.Fields {
			last[f.Key] = f.Value
		}
		for key, v := range last {
			shadowed := false
			for other := range last {
				if other == key+".value" || strings.HasPrefix(other, key+".value.") {
					shadowed = true // an explicit "<key>.value" wins over the scalar
				}
			}
			if shadowed {
				continue
			}
			got, ok := lookup(root, key)
			if !ok {
				t.Fatalf("leaf %q missing from %s", key, doc)
			}
			checkLeaf(t, key, v, got)
		}
	})
}

// lookup follows a dotted path; a scalar that also has children is under "value".
func lookup(root map[string]any, key string) (any, bool) {
	var node any = root
	for _, seg := range strings.Split(key, ".") {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, false
		}
		if node, ok = m[seg]; !ok {
			return nil, false
		}
	}
	if m, ok := node.(map[string]any); ok {
		if v, ok := m["value"]; ok {
			return v, true
		}
	}
	return node, true
}

func checkLeaf(t *rapid.T, key string, v Value, got any) {
	switch v.Kind() {
	case KindNull:
		if got != nil {
			t.Fatalf("%s: got %v, want null", key, got)
		}
	case KindString, KindBytes:
		if want := validUTF8(v.Str()); got != want {
			t.Fatalf("%s: got %q, want %q", key, got, want)
		}
	case KindInt:
		n, _ := v.AsInt()
		if got != json.Number(strconv.FormatInt(n, 10)) {
			t.Fatalf("%s: got %v, want %d", key, got, n)
		}
	case KindFloat:
		f, _ := v.AsFloat()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			if got != nil {
				t.Fatalf("%s: got %v, want null", key, got)
			}
			return
		}
		num, ok := got.(json.Number)
		g, err := num.Float64()
		if !ok || err != nil || g != f {
			t.Fatalf("%s: got %v, want %v", key, got, f)
		}
	case KindBool:
		b, _ := v.AsBool()
		if got != b {
			t.Fatalf("%s: got %v, want %v", key, got, b)
		}
	case KindTime:
		tm, _ := v.AsTime()
		s, _ := got.(string)
		back, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !back.Equal(tm) || !strings.HasSuffix(s, "Z") {
			t.Fatalf("%s: got %v, want %v in UTC", key, got, tm)
		}
	case KindRaw:
		raw, _ := v.RawJSON()
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var want any
		_ = dec.Decode(&want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %v, want %s", key, got, raw)
		}
	case KindStrings:
		ss, _ := v.AsStrings()
		arr, ok := got.([]any)
		if !ok || len(arr) != len(ss) {
			t.Fatalf("%s: got %v, want %q", key, got, ss)
		}
		for i := range ss {
			if arr[i] != validUTF8(ss[i]) {
				t.Fatalf("%s[%d]: got %q, want %q", key, i, arr[i], ss[i])
			}
		}
	}
}

// noDuplicateMembers fails when an object of doc has a member twice, which
// encoding/json would silently accept (last wins) and Elasticsearch rejects.
func noDuplicateMembers(t *rapid.T, doc []byte) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool // next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch tk := tok.(type) {
		case json.Delim:
			switch tk {
			case '{':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, key: true})
				continue
			case '[':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.obj && top.key {
				if top.keys[tk] {
					t.Fatalf("member %q twice in %s", tk, doc)
				}
				top.keys[tk] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// TestMergeRunsMatchesSort: fields made of a few ascending runs (as parsers and the
// pipeline add them, duplicates included) encode exactly as the same fields after
// a stable sort, which takes the other path of the encoder (one run, or sorted and
// strictly ascending).
func TestMergeRunsMatchesSort(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var fields []Field
		runs := rapid.IntRange(1, maxMergeRuns+2).Draw(t, "runs")
		for range runs {
			keys := rapid.SliceOfN(genKey(), 0, 6).Draw(t, "keys")
			slices.SortFunc(keys, comparePaths)
			for _, k := range keys {
				fields = append(fields, Field{Key: k, Value: genValue().Draw(t, "v")})
			}
		}
		sorted := slices.Clone(fields)
		slices.SortStableFunc(sorted, func(a, b Field) int { return comparePaths(a.Key, b.Key) })
		var enc Encoder
		got := string(enc.Append(nil, &Event{Fields: fields}))
		want := string(enc.Append(nil, &Event{Fields: sorted}))
		if got != want {
			t.Fatalf("merged runs encode as\n%s\nthe sorted fields as\n%s", got, want)
		}
	})
}
