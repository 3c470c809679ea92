// Package sigma evaluates Sigma detection rules against events in the stream. Rules
// are loaded from YAML files and compiled once into matchers; each event is checked
// only against the rules whose logsource maps to its event.dataset (see
// docs/detection.md for the table and the field mapping).
package sigma

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Rule is one loaded Sigma rule: its metadata and its detection, compiled per dataset.
type Rule struct {
	ID          string
	Title       string
	Author      string
	Description string
	Level       string
	Status      string
	References  []string
	Tags        []string
	Logsource   Logsource
	// File and Line say where the rule was read from.
	File string
	Line int

	datasets  []string
	detection *node
}

// Logsource is a rule's logsource triple.
type Logsource struct {
	Category, Product, Service string
}

func (l Logsource) String() string {
	var parts []string
	for _, kv := range [][2]string{{"category", l.Category}, {"product", l.Product}, {"service", l.Service}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+": "+kv[1])
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// webDatasets are the access-log datasets of Vigil's parsers.
var webDatasets = []string{"apache.access", "nginx.access", "aws.elb_logs", "aws.cloudfront_logs"}

// Datasets returns the event.dataset values a logsource applies to, or nil when Vigil
// has no source for it. The table is documented in docs/detection.md.
func (l Logsource) Datasets() []string {
	switch {
	case l.Product == "aws" && l.Service == "cloudtrail":
		return []string{"aws.cloudtrail"}
	case l.Category == "webserver" || l.Category == "proxy":
		return webDatasets
	case l.Service == "apache":
		// Vigil parses Apache access logs only; the error-log rules search their
		// keywords in the access line (event.original).
		return []string{"apache.access"}
	case l.Service == "nginx":
		return []string{"nginx.access"}
	case l.Product == "linux":
		return []string{"syslog"}
	}
	return nil
}

// Problem is one reason a rule file did not load.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Problems is the error of a load that found problems.
type Problems []Problem

func (ps Problems) Error() string {
	if len(ps) == 1 {
		return ps[0].String()
	}
	return fmt.Sprintf("%s (and %d more problems)", ps[0], len(ps)-1)
}

// ParseFile reads the rules of one file (a file may hold several YAML documents, each
// a rule).
func ParseFile(file string) ([]*Rule, Problems) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, Problems{{File: file, Msg: err.Error()}}
	}
	return ParseRules(file, data)
}

// ParseRules parses the rules in data; file names them in problems.
func ParseRules(file string, data []byte) ([]*Rule, Problems) {
	docs, err := parseYAML(data)
	if err != nil {
		return nil, Problems{{File: file, Line: yamlErrLine(err), Msg: "YAML: " + strings.ReplaceAll(err.Error(), "\n", " ")}}
	}
	var rules []*Rule
	var ps Problems
	for _, d := range docs {
		r, p := parseRule(file, d)
		if p != nil {
			ps = append(ps, *p)
			continue
		}
		rules = append(rules, r)
	}
	return rules, ps
}

func yamlErrLine(err error) int {
	var n int
	msg := err.Error()
	if i := strings.Index(msg, "["); i >= 0 {
		fmt.Sscanf(msg[i:], "[%d:", &n)
	}
	return n
}

func parseRule(file string, doc *node) (*Rule, *Problem) {
	bad := func(line int, format string, args ...any) (*Rule, *Problem) {
		return nil, &Problem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if doc.kind != nMap {
		return bad(doc.line, "a rule is a YAML map")
	}
	for i, k := range doc.keys {
		switch k {
		case "action":
			return bad(doc.kline[i], "unsupported feature rule collection (action: %s)", doc.vals[i].text())
		case "correlation":
			return bad(doc.kline[i], "unsupported feature correlation rule")
		case "filter":
			return bad(doc.kline[i], "unsupported feature filter rule")
		}
	}
	r := &Rule{
		File: file, Line: doc.line,
		ID: doc.get("id").text(), Title: doc.get("title").text(), Author: doc.get("author").text(),
		Description: strings.TrimSpace(doc.get("description").text()), Level: doc.get("level").text(),
		Status: doc.get("status").text(),
	}
	r.References, _ = stringList(doc.get("references"))
	r.Tags, _ = stringList(doc.get("tags"))
	if r.Title == "" {
		return bad(doc.line, "title: missing")
	}
	if r.ID == "" {
		return bad(doc.line, "id: missing (alerts are keyed by it)")
	}
	switch r.Level {
	case "", "informational", "low", "medium", "high", "critical":
	default:
		return bad(lineOfKey(doc, "level"), "level: %q is not informational, low, medium, high or critical", r.Level)
	}
	ls := doc.get("logsource")
	if ls == nil || ls.kind != nMap {
		return bad(doc.line, "logsource: missing")
	}
	r.Logsource = Logsource{Category: ls.get("category").text(), Product: ls.get("product").text(), Service: ls.get("service").text()}
	r.datasets = r.Logsource.Datasets()
	if r.datasets == nil {
		return bad(ls.line, "unsupported feature logsource %s (no Vigil dataset; see docs/detection.md)", r.Logsource)
	}
	det := doc.get("detection")
	if det == nil || det.kind != nMap {
		return bad(doc.line, "detection: missing")
	}
	r.detection = det
	// Compile once against an empty mapping to find every problem now.
	if _, err := compileDetection(r, "", BuiltinFieldMapping(), newSlotTable()); err != nil {
		var p *Problem
		if errors.As(err, &p) {
			p.File = file
			return nil, p
		}
		return bad(det.line, "%v", err)
	}
	return r, nil
}

func lineOfKey(n *node, key string) int {
	for i, k := range n.keys {
		if k == key {
			return n.kline[i]
		}
	}
	return n.line
}

func (p *Problem) Error() string { return p.String() }

// compiled is a rule's detection compiled for one dataset's field mapping.
type compiled struct {
	rule *Rule
	// indexed: the rule holds only when the dataset's index slot has one of the
	// values it is listed under.
	indexed  bool
	searches []search
	cond     expr
}

// slotTable numbers the distinct field paths of a rule set.
type slotTable struct {
	paths []string
	index map[string]int
}

func newSlotTable() *slotTable { return &slotTable{index: map[string]int{}} }

func (t *slotTable) slot(path string) int {
	if i, ok := t.index[path]; ok {
		return i
	}
	t.index[path] = len(t.paths)
	t.paths = append(t.paths, path)
	return len(t.paths) - 1
}

func (t *slotTable) slots(paths []string) []int {
	out := make([]int, len(paths))
	for i, p := range paths {
		out[i] = t.slot(p)
	}
	return out
}

// keywordFields are where keywords are searched: the log line.
var keywordFields = []string{"message", "event.original"}

func compileDetection(r *Rule, dataset string, fm *FieldMapping, st *slotTable) (*compiled, error) {
	det := r.detection
	c := &compiled{rule: r}
	var names []string
	var conds []*node
	for i, k := range det.keys {
		v := det.vals[i]
		switch k {
		case "condition":
			if v.kind == nSeq {
				conds = append(conds, v.vals...)
			} else {
				conds = append(conds, v)
			}
			continue
		case "timeframe":
			return nil, &Problem{Line: det.kline[i], Msg: "unsupported feature timeframe"}
		}
		s, err := compileSearch(k, v, dataset, fm, st)
		if err != nil {
			var p *Problem
			if errors.As(err, &p) {
				return nil, p
			}
			return nil, &Problem{Line: v.line, Msg: fmt.Sprintf("detection.%s: %v", k, err)}
		}
		names = append(names, k)
		c.searches = append(c.searches, s)
	}
	if len(conds) == 0 {
		return nil, &Problem{Line: det.line, Msg: "detection.condition: missing"}
	}
	var or orExpr
	for _, cn := range conds {
		if cn.kind != nString {
			return nil, &Problem{Line: cn.line, Msg: "detection.condition: want a string or a list of strings"}
		}
		x, err := parseCondition(cn.str, names)
		if err != nil {
			return nil, &Problem{Line: cn.line, Msg: err.Error()}
		}
		or = append(or, x)
	}
	c.cond = or
	if len(or) == 1 {
		c.cond = or[0]
	}
	return c, nil
}

func compileSearch(name string, v *node, dataset string, fm *FieldMapping, st *slotTable) (search, error) {
	var s search
	switch v.kind {
	case nMap:
		alt, err := compileMap(v, dataset, fm, st)
		if err != nil {
			return s, err
		}
		s.alts = append(s.alts, alt)
	case nSeq:
		if len(v.vals) > 0 && v.vals[0].kind == nMap {
			for _, m := range v.vals {
				if m.kind != nMap {
					return s, &Problem{Line: m.line, Msg: fmt.Sprintf("detection.%s: a list mixes maps and keywords", name)}
				}
				alt, err := compileMap(m, dataset, fm, st)
				if err != nil {
					return s, err
				}
				s.alts = append(s.alts, alt)
			}
			return s, nil
		}
		it, err := compileKeywords(v, false, st)
		if err != nil {
			return s, err
		}
		s.alts = append(s.alts, []item{it})
	default:
		it, err := compileKeywords(&node{kind: nSeq, line: v.line, vals: []*node{v}}, false, st)
		if err != nil {
			return s, err
		}
		s.alts = append(s.alts, []item{it})
	}
	return s, nil
}

func compileKeywords(v *node, all bool, st *slotTable) (item, error) {
	it := item{exists: -1, all: all, slots: st.slots(keywordFields)}
	for _, k := range v.vals {
		if k.kind == nMap || k.kind == nSeq || k.kind == nNull {
			return it, &Problem{Line: k.line, Msg: "keywords: want plain values"}
		}
		// A keyword is found anywhere in the line.
		ms, err := compileValue(modifiers{transforms: []string{"contains"}}, k)
		if err != nil {
			return it, &Problem{Line: k.line, Msg: err.Error()}
		}
		it.matchers = append(it.matchers, ms...)
	}
	optimize(&it)
	return it, nil
}

// optimize replaces the values of an OR item with one multi-pattern matcher when
// there are many. Exact values are kept aside for the rule index (see index.go).
func optimize(it *item) {
	it.eqValues = equalValues(it)
	if !it.all && len(it.matchers) >= minMulti {
		it.matchers = []valueMatcher{newMulti(it.matchers)}
	}
}

func compileMap(m *node, dataset string, fm *FieldMapping, st *slotTable) ([]item, error) {
	var out []item
	for i, key := range m.keys {
		v := m.vals[i]
		line := m.kline[i]
		mods, err := decodeModifiers(key)
		if err != nil {
			return nil, &Problem{Line: line, Msg: err.Error()}
		}
		if mods.field == "" {
			// '|all': [keywords] — every keyword must occur.
			if !mods.all || len(mods.transforms) > 0 || mods.typ != "" {
				return nil, &Problem{Line: line, Msg: fmt.Sprintf("%q: keywords take only |all", key)}
			}
			vals := v
			if v.kind != nSeq {
				vals = &node{kind: nSeq, vals: []*node{v}}
			}
			it, err := compileKeywords(vals, true, st)
			if err != nil {
				return nil, err
			}
			out = append(out, it)
			continue
		}
		it := item{exists: -1, all: mods.all, neq: mods.neq, slots: st.slots(fm.Resolve(dataset, mods.field))}
		vals := []*node{v}
		if v.kind == nSeq {
			vals = v.vals
			if len(vals) == 0 {
				return nil, &Problem{Line: line, Msg: fmt.Sprintf("%s: empty list of values", key)}
			}
		} else if mods.all {
			return nil, &Problem{Line: line, Msg: fmt.Sprintf("%s: |all needs a list of values", key)}
		}
		for _, val := range vals {
			switch {
			case val.kind == nMap || val.kind == nSeq:
				return nil, &Problem{Line: val.line, Msg: fmt.Sprintf("%s: a value must be a scalar", key)}
			case mods.typ == "exists":
				if val.kind != nBool || len(vals) != 1 {
					return nil, &Problem{Line: val.line, Msg: fmt.Sprintf("%s: exists takes true or false", key)}
				}
				it.exists = 0
				if val.str == "true" {
					it.exists = 1
				}
			case mods.typ == "fieldref":
				if val.kind == nNull || strings.ContainsAny(val.str, "*?") {
					return nil, &Problem{Line: val.line, Msg: fmt.Sprintf("%s: fieldref takes a field name without wildcards", key)}
				}
				it.refSlots = append(it.refSlots, st.slots(fm.Resolve(dataset, val.str))...)
				if len(mods.transforms) > 0 {
					it.refMode = mods.transforms[len(mods.transforms)-1]
				}
			case val.kind == nNull:
				if len(vals) == 1 {
					it.null = true
				} else {
					it.nullOK = true
				}
			default:
				ms, err := compileValue(mods, val)
				if err != nil {
					var u *errUnsupported
					if errors.As(err, &u) {
						return nil, &Problem{Line: val.line, Msg: u.Error()}
					}
					return nil, &Problem{Line: val.line, Msg: fmt.Sprintf("%s: %v", key, err)}
				}
				it.matchers = append(it.matchers, ms...)
			}
		}
		optimize(&it)
		if it.all && it.nullOK {
			return nil, &Problem{Line: line, Msg: fmt.Sprintf("%s: null cannot be one of |all values", key)}
		}
		out = append(out, it)
	}
	// An AND has no side effects, so the cheap tests go first: a rule usually fails
	// on its event name or method before its long lists are scanned.
	sort.SliceStable(out, func(i, j int) bool { return out[i].cost() < out[j].cost() })
	return out, nil
}

// cost ranks an item by how much a test of it costs.
func (it *item) cost() int {
	switch {
	case it.exists >= 0 || it.null:
		return 0
	case it.eqValues != nil && len(it.matchers) == 1:
		return 1
	case it.refSlots != nil:
		return 4
	}
	c := 2
	for _, m := range it.matchers {
		switch m.(type) {
		case *multi:
			c = max(c, 3)
		case reMatcher:
			c = max(c, 5)
		}
	}
	if it.slots != nil && len(it.slots) > 1 {
		c++
	}
	return c
}

// RuleSet is a set of rules compiled for every dataset they apply to. It is
// immutable after Compile and may be shared by any number of Evaluators.
type RuleSet struct {
	Rules     []*Rule
	paths     []string
	byDataset map[string]*dsRules
	groups    []*scanGroup
}

// Compile compiles rules against fm. Rule ids must be unique.
func Compile(rules []*Rule, fm *FieldMapping) (*RuleSet, error) {
	st := newSlotTable()
	rs := &RuleSet{Rules: rules, byDataset: map[string]*dsRules{}}
	lists := map[string][]*compiled{}
	seen := map[string]*Rule{}
	var ps Problems
	for _, r := range rules {
		if o := seen[r.ID]; o != nil {
			ps = append(ps, Problem{File: r.File, Line: r.Line, Msg: fmt.Sprintf("id %s is also the id of %s:%d", r.ID, o.File, o.Line)})
			continue
		}
		seen[r.ID] = r
		for _, d := range r.datasets {
			c, err := compileDetection(r, d, fm, st)
			if err != nil {
				var p *Problem
				if errors.As(err, &p) {
					p.File = r.File
					ps = append(ps, *p)
					continue
				}
				return nil, err
			}
			lists[d] = append(lists[d], c)
		}
	}
	if ps != nil {
		return nil, ps
	}
	rs.paths = st.paths
	for _, d := range sortedKeys(lists) {
		rs.byDataset[d] = buildIndex(lists[d])
		rs.groups = buildScanGroups(lists[d], rs.groups)
	}
	return rs, nil
}

// Datasets returns the datasets the set has rules for, sorted.
func (rs *RuleSet) Datasets() []string {
	var out []string
	for d := range rs.byDataset {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Load reads the rule files that patterns name (files, directories or globs with **)
// and compiles them with fm.
func Load(patterns []string, fm *FieldMapping) (*RuleSet, error) {
	files, err := ExpandPatterns(patterns)
	if err != nil {
		return nil, err
	}
	var rules []*Rule
	var ps Problems
	for _, f := range files {
		rs, p := ParseFile(f)
		rules = append(rules, rs...)
		ps = append(ps, p...)
	}
	if ps != nil {
		return nil, ps
	}
	return Compile(rules, fm)
}
