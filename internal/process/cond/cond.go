// Package cond compiles the expressions of processor conditions (`if:`) and computed
// values over an event's ECS fields, with github.com/expr-lang/expr.
//
// A dotted path such as `log.syslog.severity.code` names a field of the event, as
// does `field("@timestamp")` for names that are not identifiers. A field the event
// does not have is nil; an object field (a path with leaves below it) is a map.
// Expressions are compiled once, at start; each evaluation reads only the fields the
// expression names.
package cond

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/vigil-sec/vigil/internal/event"
)

// Program is a compiled expression. It is safe for concurrent use; the per-call
// state lives in an Evaluator.
type Program struct {
	src    string
	prog   *vm.Program
	fields []string // the field paths the expression reads
}

// Compile compiles an expression whose result is any value.
func Compile(src string) (*Program, error) { return compile(src, false) }

// CompileBool compiles a condition: an expression whose result must be a boolean.
func CompileBool(src string) (*Program, error) { return compile(src, true) }

func compile(src string, boolean bool) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty expression")
	}
	fp := &fieldPatcher{locals: letNames(src)}
	opts := []expr.Option{
		expr.Env(map[string]any{}),
		expr.AllowUndefinedVariables(),
		expr.Patch(fp),
	}
	for name, cmp := range comparisons {
		opts = append(opts, expr.Function(name, func(args ...any) (any, error) { return compare(cmp, args[0], args[1]), nil },
			new(func(any, any) bool)))
	}
	if boolean {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err == nil {
		err = fp.err
	}
	if err != nil {
		return nil, fmt.Errorf("expression %q: %s", src, oneLine(err.Error()))
	}
	slices.Sort(fp.fields)
	return &Program{src: src, prog: prog, fields: slices.Compact(fp.fields)}, nil
}

// oneLine keeps expr's first line ("unknown name x (1:4)") and drops its ASCII-art
// pointer, which does not survive a one-line config error.
func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// String returns the source of the expression.
func (p *Program) String() string { return p.src }

// Fields returns the field paths the expression reads, sorted. The caller must not
// change the slice.
func (p *Program) Fields() []string { return p.fields }

// fieldPatcher rewrites member chains rooted at an identifier (`a.b.c`) and
// field("x") calls into single identifiers named by the whole path, so the
// environment is a flat map from path to value. expr walks children before parents,
// so `a.b` is already one identifier when `a.b.c` is visited.
type fieldPatcher struct {
	fields []string
	err    error
	// locals are the names declared with let: variables, not fields, so
	// `let u = user; u.name` reads the variable's member.
	locals map[string]bool
}

func (fp *fieldPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if name, ok := comparisonFuncs[n.Operator]; ok {
			ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: []ast.Node{n.Left, n.Right}})
		}
	case *ast.IdentifierNode:
		if !fp.locals[n.Value] {
			fp.note(n.Value)
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, isStr := n.Property.(*ast.StringNode)
		if !ok || !isStr || n.Method || fp.locals[id.Value] {
			return
		}
		path := id.Value + "." + prop.Value
		fp.drop(id.Value)
		ast.Patch(node, &ast.IdentifierNode{Value: path})
		fp.note(path)
	case *ast.CallNode:
		callee, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		// A function's name is no field (its identifier was noted before the call).
		fp.drop(callee.Value)
		if callee.Value != "field" {
			return
		}
		if len(n.Arguments) != 1 {
			fp.err = errors.New(`field() takes one constant string, the field's path: field("@timestamp")`)
			return
		}
		s, ok := n.Arguments[0].(*ast.StringNode)
		if !ok {
			fp.err = errors.New(`field() takes one constant string, the field's path: field("@timestamp")`)
			return
		}
		ast.Patch(node, &ast.IdentifierNode{Value: s.Value})
		fp.note(s.Value)
	}
}

// letNames returns the names src declares with let; nil when it does not parse
// (expr.Compile then reports the error).
func letNames(src string) map[string]bool {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	var names letCollector
	ast.Walk(&tree.Node, &names)
	return names
}

type letCollector map[string]bool

func (c *letCollector) Visit(node *ast.Node) {
	if n, ok := (*node).(*ast.VariableDeclaratorNode); ok {
		if *c == nil {
			*c = map[string]bool{}
		}
		(*c)[n.Name] = true
	}
}

func (fp *fieldPatcher) note(path string) { fp.fields = append(fp.fields, path) }

// drop forgets a path noted for an identifier that turned out to be the root of a
// longer path.
func (fp *fieldPatcher) drop(path string) {
	if i := slices.Index(fp.fields, path); i >= 0 {
		fp.fields = slices.Delete(fp.fields, i, i+1)
	}
}

// Ordering comparisons are rewritten into calls of these functions, so that a
// comparison with a missing field (nil), or of a string with a number, is false
// instead of an error: `log.syslog.severity.code >= 7` does not hold for an event
// without a severity.
var (
	comparisonFuncs = map[string]string{"<": "__lt", "<=": "__le", ">": "__gt", ">=": "__ge"}
	comparisons     = map[string]func(a, b any) bool{
		"__lt": runtime.Less, "__le": runtime.LessOrEqual, "__gt": runtime.More, "__ge": runtime.MoreOrEqual,
	}
)

func compare(cmp func(a, b any) bool, a, b any) (ok bool) {
	if a == nil || b == nil {
		return false
	}
	defer func() {
		if recover() != nil {
			ok = false // mismatched types
		}
	}()
	return cmp(a, b)
}

// Evaluator runs programs against events. It reuses its environment and virtual
// machine between calls, so it is not safe for concurrent use: each worker has its
// own.
type Evaluator struct {
	env map[string]any
	vm  vm.VM
}

// NewEvaluator returns an Evaluator.
func NewEvaluator() *Evaluator { return &Evaluator{env: map[string]any{}} }

// Eval runs p against e.
func (ev *Evaluator) Eval(p *Program, e *event.Event) (out any, err error) {
	clear(ev.env)
	for _, f := range p.fields {
		ev.env[f] = Lookup(e, f)
	}
	defer func() {
		// expr reports run-time errors as errors, but a panic in it must not take a
		// worker down either.
		if r := recover(); r != nil {
			err = fmt.Errorf("expression %q failed: %v", p.src, r)
		}
	}()
	out, err = ev.vm.Run(p.prog, ev.env)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %s", p.src, oneLine(err.Error()))
	}
	return out, nil
}

// True evaluates a condition compiled with CompileBool.
func (ev *Evaluator) True(p *Program, e *event.Event) (bool, error) {
	out, err := ev.Eval(p, e)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// Lookup returns the value of path in e as expr sees it: nil when absent, a string,
// int, float64, bool, time.Time, []any or map[string]any.
func Lookup(e *event.Event, path string) any {
	if v, ok := e.Get(path); ok {
		return Native(v)
	}
	if !e.Has(path) {
		return nil
	}
	// An object: build it from the leaves below path.
	obj := map[string]any{}
	prefix := path + "."
	for _, f := range e.Fields {
		rest, ok := strings.CutPrefix(f.Key, prefix)
		if !ok {
			continue
		}
		m := obj
		parts := strings.Split(rest, ".")
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = Native(f.Value)
	}
	return obj
}

// Native converts an event value to a plain Go value.
func Native(v event.Value) any {
	switch v.Kind() {
	case event.KindString, event.KindBytes:
		return v.Str()
	case event.KindInt:
		n, _ := v.AsInt()
		return int(n)
	case event.KindFloat:
		f, _ := v.AsFloat()
		return f
	case event.KindBool:
		b, _ := v.AsBool()
		return b
	case event.KindTime:
		t, _ := v.AsTime()
		return t
	case event.KindStrings:
		ss, _ := v.AsStrings()
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	case event.KindRaw:
		raw, _ := v.RawJSON()
		var out any
		if err := json.Unmarshal(raw, &out); err != nil {
			return string(raw)
		}
		return normalizeNumbers(out)
	}
	return nil
}

// normalizeNumbers turns whole float64s from encoding/json into ints, so `x == 3`
// holds for a JSON 3 inside an array as it does for a leaf.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int(x)) && x >= -1<<53 && x <= 1<<53 {
			return int(x)
		}
	case []any:
		for i := range x {
			x[i] = normalizeNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeNumbers(x[k])
		}
	}
	return v
}

// Value converts the result of an expression into an event value: strings, numbers,
// booleans and times as they are, nil as null, anything else as its JSON encoding.
func Value(out any) (event.Value, error) {
	switch x := out.(type) {
	case nil:
		return event.Value{}, nil
	case string:
		return event.String(x), nil
	case int:
		return event.Int(int64(x)), nil
	case int64:
		return event.Int(x), nil
	case float64:
		return event.Float(x), nil
	case bool:
		return event.Bool(x), nil
	case time.Time:
		return event.Time(x), nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return event.Value{}, fmt.Errorf("the expression's result (%T) cannot be a field value: %v", out, err)
	}
	return event.Raw(b), nil
}
