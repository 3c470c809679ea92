package sigma

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/process"
)

// A rule test file (like promtool's rule tests) names rule files and lists tests:
// events in, expected alerts out. The events are either flat ECS fields (events) or
// raw records run through a format's parser (format + records):
//
//	rule_files: [../rules/aws_iam_backdoor_users_keys.yml]   # relative to this file
//	field_mapping: builtin                                  # optional
//	tests:
//	  - name: access key created for another user
//	    dataset: aws.cloudtrail
//	    events:
//	      - event.action: CreateAccessKey
//	        event.provider: iam.amazonaws.com
//	    alerts:
//	      - {rule: 4fd9cfb4-4b7c-4d5e-9f1a-7c1f5e3d2a10, event: 0}
//
// A test passes when the alerts are exactly those listed: no more, no fewer.

// TestResult is the outcome of one test of a rule test file.
type TestResult struct {
	File, Name string
	// Failures is empty when the test passed.
	Failures []string
}

// FormatLookup finds a parser format by name (components.Registry.Format).
type FormatLookup func(name string) (parse.Format, bool)

// RunTestFiles runs every rule test file (.yml, .yaml) below dir.
func RunTestFiles(dir string, formats FormatLookup) ([]TestResult, error) {
	files, err := ExpandPatterns([]string{dir})
	if err != nil {
		return nil, err
	}
	var out []TestResult
	for _, f := range files {
		rs, err := RunTestFile(f, formats)
		if err != nil {
			return out, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// RunTestFile runs the tests of one file.
func RunTestFile(file string, formats FormatLookup) ([]TestResult, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	docs, err := parseYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if len(docs) != 1 || docs[0].kind != nMap {
		return nil, fmt.Errorf("%s: a rule test file is one map with rule_files and tests", file)
	}
	doc := docs[0]
	base := filepath.Dir(file)
	ruleFiles, err := stringList(doc.get("rule_files"))
	if err != nil || len(ruleFiles) == 0 {
		return nil, fmt.Errorf("%s: rule_files: name the rules under test", file)
	}
	for i, r := range ruleFiles {
		if !filepath.IsAbs(r) {
			ruleFiles[i] = filepath.Join(base, r)
		}
	}
	fmName := doc.get("field_mapping").text()
	if fmName != "" && fmName != "builtin" && !filepath.IsAbs(fmName) {
		fmName = filepath.Join(base, fmName)
	}
	fm, err := LoadFieldMapping(fmName)
	if err != nil {
		return nil, fmt.Errorf("%s: field_mapping: %v", file, err)
	}
	set, err := Load(ruleFiles, fm)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	tests := doc.get("tests")
	if tests == nil || tests.kind != nSeq {
		return nil, fmt.Errorf("%s: tests: want a list", file)
	}
	var out []TestResult
	for i, tn := range tests.vals {
		name := tn.get("name").text()
		if name == "" {
			name = "tests[" + strconv.Itoa(i) + "]"
		}
		res := TestResult{File: file, Name: name}
		if err := runTest(set, tn, formats, &res); err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("line %d: %v", tn.line, err))
		}
		out = append(out, res)
	}
	return out, nil
}

type alertKey struct {
	rule  string
	event int
}

func runTest(set *RuleSet, tn *node, formats FormatLookup, res *TestResult) error {
	events, err := testEvents(tn, formats)
	if err != nil {
		return err
	}
	dataset := tn.get("dataset").text()
	want := map[alertKey]bool{}
	if a := tn.get("alerts"); a != nil {
		if a.kind != nSeq {
			return fmt.Errorf("alerts: want a list of {rule, event}")
		}
		for _, x := range a.vals {
			n, err := strconv.Atoi(x.get("event").text())
			if x.get("event") == nil {
				n, err = 0, nil
			}
			if err != nil || x.get("rule").text() == "" {
				return fmt.Errorf("line %d: an alert is {rule: ID, event: INDEX}", x.line)
			}
			want[alertKey{x.get("rule").text(), n}] = true
		}
	}
	got := map[alertKey]bool{}
	ev := set.NewEvaluator()
	for i, e := range events {
		ds := dataset
		if v, ok := e.Get("event.dataset"); ok && ds == "" {
			ds = v.Str()
		}
		if ds == "" {
			return fmt.Errorf("event %d: no dataset (set the test's dataset or event.dataset)", i)
		}
		ev.Match(e, ds, func(r *Rule) { got[alertKey{r.ID, i}] = true })
	}
	var fails []string
	for k := range want {
		if !got[k] {
			fails = append(fails, fmt.Sprintf("missing alert: rule %s on event %d", k.rule, k.event))
		}
	}
	for k := range got {
		if !want[k] {
			fails = append(fails, fmt.Sprintf("unexpected alert: rule %s on event %d", k.rule, k.event))
		}
	}
	sort.Strings(fails)
	res.Failures = append(res.Failures, fails...)
	return nil
}

func testEvents(tn *node, formats FormatLookup) ([]*event.Event, error) {
	if recs := tn.get("records"); recs != nil {
		name := tn.get("format").text()
		f, ok := formats(name)
		if formats == nil || !ok {
			return nil, fmt.Errorf("format: unknown format %q", name)
		}
		p, err := f.New(f.NewConfig())
		if err != nil {
			return nil, err
		}
		list, err := stringList(recs)
		if err != nil {
			return nil, fmt.Errorf("records: want a list of raw records")
		}
		c := &eventCopier{}
		types := func(string) (process.Type, bool) {
			return process.Type{Name: "copy", New: func(config.Component, process.Deps) (process.Processor, error) { return c, nil }}, true
		}
		chain, err := process.NewChain([]*config.Processor{{Type: "copy"}}, types, process.Deps{}, nil)
		if err != nil {
			return nil, err
		}
		n := &process.Normalizer{Source: "rules-test", FormatDataset: f.Dataset, Dataset: name, KeepOriginal: true,
			Parser: p, Chain: chain}
		for i, r := range list {
			rec := process.Record{Data: []byte(r), Received: time.Unix(0, 0), Origin: event.Origin{Seq: uint64(i)}}
			if _, err := n.Process(rec, discard{}); err != nil {
				return nil, fmt.Errorf("records[%d]: %v", i, err)
			}
		}
		return c.events, nil
	}
	evs := tn.get("events")
	if evs == nil || evs.kind != nSeq {
		return nil, fmt.Errorf("events: want a list of events (maps of ECS fields), or format and records")
	}
	var out []*event.Event
	for _, en := range evs.vals {
		if en.kind != nMap {
			return nil, fmt.Errorf("line %d: an event is a map of fields", en.line)
		}
		e := &event.Event{}
		flatten(e, "", en)
		out = append(out, e)
	}
	return out, nil
}

// eventCopier is a processor that keeps a copy of each event as the processors see it.
type eventCopier struct{ events []*event.Event }

func (c *eventCopier) Process(it *process.Item) (process.Verdict, error) {
	cp := &event.Event{}
	for _, f := range it.Event.Fields {
		v := f.Value
		if b, ok := v.AsBytes(); ok {
			v = event.String(string(b))
		} else if b, ok := v.RawJSON(); ok {
			v = event.Raw(append([]byte(nil), b...))
		}
		cp.Add(f.Key, v)
	}
	c.events = append(c.events, cp)
	return process.Drop, nil
}

// discard is a process.Output that keeps nothing.
type discard struct{}

func (discard) Event(string, []byte) error { return nil }
func (discard) Reject(int, []byte, error)  {}
func (discard) Skip(string)                {}

func flatten(e *event.Event, prefix string, n *node) {
	switch n.kind {
	case nMap:
		for i, k := range n.keys {
			flatten(e, prefix+k+".", n.vals[i])
		}
		return
	}
	key := strings.TrimSuffix(prefix, ".")
	switch n.kind {
	case nString:
		e.Set(key, event.String(n.str))
	case nInt:
		i, _ := strconv.ParseInt(n.str, 10, 64)
		e.Set(key, event.Int(i))
	case nFloat:
		f, _ := strconv.ParseFloat(n.str, 64)
		e.Set(key, event.Float(f))
	case nBool:
		e.Set(key, event.Bool(n.str == "true"))
	case nNull:
		e.Set(key, event.Value{})
	case nSeq:
		var ss []string
		allStrings := true
		var raw []any
		for _, v := range n.vals {
			if v.kind != nString {
				allStrings = false
			}
			ss = append(ss, v.str)
			raw = append(raw, plain(v))
		}
		if allStrings {
			e.Set(key, event.Strings(ss))
			return
		}
		b, _ := json.Marshal(raw)
		e.Set(key, event.Raw(b))
	}
}

func plain(n *node) any {
	switch n.kind {
	case nInt, nFloat:
		f, _ := strconv.ParseFloat(n.str, 64)
		return f
	case nBool:
		return n.str == "true"
	case nNull:
		return nil
	case nSeq:
		out := []any{}
		for _, v := range n.vals {
			out = append(out, plain(v))
		}
		return out
	case nMap:
		out := map[string]any{}
		for i, k := range n.keys {
			out[k] = plain(n.vals[i])
		}
		return out
	}
	return n.str
}
