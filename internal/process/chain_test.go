package process

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/event"
)

// procFunc is a processor made of a function; its config is a noConfig.
type procFunc func(it *Item) (Verdict, error)

func (f procFunc) Process(it *Item) (Verdict, error) { return f(it) }

type noConfig struct{}

func (noConfig) Validate() error { return nil }

// testChain builds a chain of the given processors, each under type "t<index>".
func testChain(t *testing.T, procs ...Processor) *Chain {
	t.Helper()
	var cfgs []*config.Processor
	for i := range procs {
		cfgs = append(cfgs, &config.Processor{Type: "t" + string(rune('0'+i)), Settings: noConfig{}})
	}
	return testChainOf(t, cfgs, procs, &countErrors{})
}

func testChainOf(t *testing.T, cfgs []*config.Processor, procs []Processor, count Counter) *Chain {
	t.Helper()
	types := func(name string) (Type, bool) {
		for i, pc := range cfgs {
			if pc.Type == name {
				p := procs[i]
				return Type{Name: name, NewConfig: func() config.Component { return noConfig{} },
					New: func(config.Component, Deps) (Processor, error) { return p, nil }}, true
			}
		}
		return Type{}, false
	}
	c, err := NewChain(cfgs, types, Deps{}, count)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type countErrors map[string]int

func (c *countErrors) Error(reason string) { (*c)[reason]++ }

func newItem(fields ...event.Field) *Item {
	e := &event.Event{}
	e.Set("event.dataset", event.String("syslog"))
	for _, f := range fields {
		e.Set(f.Key, f.Value)
	}
	return &Item{Event: e, enc: &event.Encoder{}}
}

func TestChainOutcomes(t *testing.T) {
	set := func(k, v string) Processor {
		return procFunc(func(it *Item) (Verdict, error) { it.Event.Set(k, event.String(v)); return Pass, nil })
	}
	drop := procFunc(func(*Item) (Verdict, error) { return Drop, nil })
	fail := procFunc(func(*Item) (Verdict, error) { return Pass, errors.New("no good") })
	boom := procFunc(func(*Item) (Verdict, error) { panic("boom") })
	tests := []struct {
		name       string
		cfgs       []*config.Processor
		procs      []Processor
		wantV      Verdict
		wantReason string
		wantErr    string
		wantField  string // labels.x after the chain
		wantCount  map[string]int
	}{
		{name: "empty chain passes", wantV: Pass},
		{name: "in order", cfgs: cfgs("set", "set2"), procs: []Processor{set("labels.x", "a"), set("labels.x", "b")}, wantField: "b"},
		{name: "drop stops the chain", cfgs: cfgs("drop", "set"), procs: []Processor{drop, set("labels.x", "a")}, wantV: Drop, wantReason: "drop:0"},
		{name: "drop reason uses the name", cfgs: []*config.Processor{{Type: "drop", Name: "debug", Settings: noConfig{}}}, procs: []Processor{drop}, wantV: Drop, wantReason: "drop:debug"},
		{name: "condition false skips", cfgs: []*config.Processor{{Type: "drop", If: `event.dataset == "other"`, Settings: noConfig{}}}, procs: []Processor{drop}},
		{name: "condition true runs", cfgs: []*config.Processor{{Type: "drop", If: `event.dataset startsWith "sys"`, Settings: noConfig{}}}, procs: []Processor{drop}, wantV: Drop, wantReason: "drop:0"},
		{name: "comparison with a missing field is false", cfgs: []*config.Processor{{Type: "drop", If: `log.syslog.severity.code >= 7`, Settings: noConfig{}}}, procs: []Processor{drop}},
		{name: "condition that fails is false and counted", cfgs: []*config.Processor{{Type: "drop", If: `int("x") == 1`, Settings: noConfig{}}}, procs: []Processor{drop}, wantCount: map[string]int{"condition_error": 1}},
		{name: "missing field is nil", cfgs: []*config.Processor{{Type: "drop", If: `user.name == nil`, Settings: noConfig{}}}, procs: []Processor{drop}, wantV: Drop, wantReason: "drop:0"},
		{name: "error rejects with index and type", cfgs: cfgs("set", "redact"), procs: []Processor{set("labels.x", "a"), fail}, wantErr: "processors[1] (redact): no good"},
		{name: "panic rejects and is counted", cfgs: cfgs("set"), procs: []Processor{boom}, wantErr: "processors[0] (set): the processor panicked", wantCount: map[string]int{"processor_panic": 1}},
		{name: "invalid routed dataset rejects", cfgs: cfgs("set"), procs: []Processor{set("event.dataset", "bad dataset")}, wantErr: `event.dataset "bad dataset" is not a valid dataset`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			count := &countErrors{}
			c := testChainOf(t, tt.cfgs, tt.procs, count)
			it := newItem()
			v, reason, err := c.Run(it)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || DLQStage(err) != "process" {
					t.Fatalf("err = %v, want %q (stage process)", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if v != tt.wantV || reason != tt.wantReason {
				t.Fatalf("verdict %v %q, want %v %q", v, reason, tt.wantV, tt.wantReason)
			}
			if tt.wantField != "" {
				if got, _ := it.Event.Get("labels.x"); got.Str() != tt.wantField {
					t.Fatalf("labels.x = %q, want %q", got.Str(), tt.wantField)
				}
			}
			for k, n := range tt.wantCount {
				if (*count)[k] != n {
					t.Fatalf("count %s = %d, want %d (%v)", k, (*count)[k], n, *count)
				}
			}
			if len(tt.wantCount) == 0 && len(*count) != 0 {
				t.Fatalf("unexpected counts %v", *count)
			}
		})
	}
}

func cfgs(types ...string) []*config.Processor {
	var out []*config.Processor
	for _, typ := range types {
		out = append(out, &config.Processor{Type: typ, Settings: noConfig{}})
	}
	return out
}

// A read-only step keeps the cached encoding; a step that may write drops it.
func TestChainKeepsEncodingAcrossReadOnlySteps(t *testing.T) {
	var seen []string
	look := readOnlyFunc(func(it *Item) (Verdict, error) { seen = append(seen, string(it.Doc())); return Pass, nil })
	write := procFunc(func(it *Item) (Verdict, error) { it.Event.Set("labels.x", event.String("w")); return Pass, nil })
	c := testChainOf(t, cfgs("a", "b", "c"), []Processor{look, write, look}, nil)
	it := newItem()
	if _, _, err := c.Run(it); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || strings.Contains(seen[0], "labels") || !strings.Contains(seen[1], `"labels":{"x":"w"}`) {
		t.Fatalf("docs seen: %q", seen)
	}
	if got := string(it.Doc()); got != seen[1] {
		t.Fatalf("final doc %s, want the cached %s", got, seen[1])
	}
}

type readOnlyFunc func(it *Item) (Verdict, error)

func (f readOnlyFunc) Process(it *Item) (Verdict, error) { return f(it) }
func (readOnlyFunc) ReadOnly() bool                      { return true }

// The normalizer runs the chain: a dropped event is skipped with its reason, a
// routed one goes out under its new dataset, an emitted one under its own.
func TestNormalizerRunsChain(t *testing.T) {
	route := procFunc(func(it *Item) (Verdict, error) {
		it.Event.Set("event.dataset", event.String("security.high"))
		alert := &event.Event{}
		alert.Set("event.dataset", event.String("vigil.alert"))
		alert.Set("message", event.String("seen"))
		return Pass, it.Emit(alert)
	})
	c := &collect{}
	n := &Normalizer{Source: "s", Parser: &oneEvent{}, Chain: testChainOf(t, cfgs("route"), []Processor{route}, nil)}
	if _, err := n.Process(Record{Data: []byte("r"), Received: time.Now()}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.docs) != 2 || c.datasets[0] != "vigil.alert" || c.datasets[1] != "security.high" ||
		!strings.Contains(c.docs[1], `"dataset":"security.high"`) {
		t.Fatalf("datasets %v docs %v", c.datasets, c.docs)
	}
	n.Chain = testChainOf(t, cfgs("drop"), []Processor{procFunc(func(*Item) (Verdict, error) { return Drop, nil })}, nil)
	c = &collect{}
	if _, err := n.Process(Record{Data: []byte("r"), Received: time.Now()}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.docs) != 0 || len(c.skips) != 1 || c.skips[0] != "drop:0" {
		t.Fatalf("docs %v skips %v", c.docs, c.skips)
	}
}
