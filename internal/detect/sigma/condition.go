package sigma

import (
	"fmt"
	"path"
	"strings"
)

// expr is a compiled condition. eval asks s for the result of a search identifier.
type expr interface {
	eval(m *matcher) bool
}

type (
	orExpr  []expr
	andExpr []expr
	notExpr struct{ x expr }
	// refExpr is one search identifier, by its index in the rule's searches.
	refExpr int
)

func (o orExpr) eval(m *matcher) bool {
	for _, x := range o {
		if x.eval(m) {
			return true
		}
	}
	return false
}

func (a andExpr) eval(m *matcher) bool {
	for _, x := range a {
		if !x.eval(m) {
			return false
		}
	}
	return true
}

func (n notExpr) eval(m *matcher) bool { return !n.x.eval(m) }
func (r refExpr) eval(m *matcher) bool { return m.search(int(r)) }

// parseCondition parses one condition string of the Sigma v2 grammar:
//
//	or_expr  := and_expr ("or" and_expr)*
//	and_expr := not_expr ("and" not_expr)*
//	not_expr := "not" not_expr | "(" or_expr ")" | ("1"|"any"|"all") "of" ("them"|PATTERN) | IDENT
//
// names are the rule's search identifiers, in order; the result refers to them by
// index. Keywords are lower-case only, as in pySigma.
func parseCondition(src string, names []string) (expr, error) {
	toks, err := lexCondition(src)
	if err != nil {
		return nil, err
	}
	p := &condParser{toks: toks, names: names}
	x, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("condition %q: unexpected %q", src, p.toks[p.pos])
	}
	return x, nil
}

func lexCondition(src string) ([]string, error) {
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			toks = append(toks, src[i:i+1])
			i++
		case c == '|':
			return nil, fmt.Errorf("condition %q: unsupported feature aggregation (| in condition; use a correlation rule)", src)
		case isIdentByte(c):
			j := i
			for j < len(src) && isIdentByte(src[j]) {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		default:
			return nil, fmt.Errorf("condition %q: unexpected character %q at offset %d", src, c, i)
		}
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("condition is empty")
	}
	return toks, nil
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '*' || c == '.'
}

type condParser struct {
	toks  []string
	pos   int
	names []string
	depth int
}

func (p *condParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *condParser) or() (expr, error) {
	x, err := p.and()
	if err != nil {
		return nil, err
	}
	list := orExpr{x}
	for p.peek() == "or" {
		p.pos++
		y, err := p.and()
		if err != nil {
			return nil, err
		}
		list = append(list, y)
	}
	if len(list) == 1 {
		return x, nil
	}
	return list, nil
}

func (p *condParser) and() (expr, error) {
	x, err := p.not()
	if err != nil {
		return nil, err
	}
	list := andExpr{x}
	for p.peek() == "and" {
		p.pos++
		y, err := p.not()
		if err != nil {
			return nil, err
		}
		list = append(list, y)
	}
	if len(list) == 1 {
		return x, nil
	}
	return list, nil
}

// maxDepth bounds nesting so that a hostile condition cannot exhaust the stack.
const maxDepth = 100

func (p *condParser) not() (expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, fmt.Errorf("condition nests deeper than %d", maxDepth)
	}
	t := p.peek()
	switch t {
	case "":
		return nil, fmt.Errorf("condition ends early")
	case "not":
		p.pos++
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return notExpr{x}, nil
	case "(":
		p.pos++
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("condition: missing )")
		}
		p.pos++
		return x, nil
	case ")", "and", "or", "of", "them":
		return nil, fmt.Errorf("condition: unexpected %q", t)
	}
	if p.pos+1 < len(p.toks) && p.toks[p.pos+1] == "of" {
		return p.selector()
	}
	p.pos++
	for i, n := range p.names {
		if n == t {
			return refExpr(i), nil
		}
	}
	if strings.ContainsRune(t, '*') {
		return nil, fmt.Errorf("condition: pattern %q needs \"1 of\" or \"all of\"", t)
	}
	return nil, fmt.Errorf("condition: unknown search identifier %q", t)
}

func (p *condParser) selector() (expr, error) {
	quant := p.toks[p.pos]
	p.pos += 2
	var all bool
	switch quant {
	case "1", "any":
	case "all":
		all = true
	default:
		return nil, fmt.Errorf("condition: unsupported feature %q of (only 1 of, any of and all of)", quant)
	}
	target := p.peek()
	if target == "" || target == "(" || target == ")" {
		return nil, fmt.Errorf("condition: %s of needs them or a pattern", quant)
	}
	p.pos++
	var refs []expr
	for i, n := range p.names {
		if target == "them" {
			if strings.HasPrefix(n, "_") {
				continue
			}
		} else if ok, _ := path.Match(target, n); !ok || (strings.HasPrefix(n, "_") && !strings.HasPrefix(target, "_")) {
			continue
		}
		refs = append(refs, refExpr(i))
	}
	switch {
	case len(refs) == 0:
		// pySigma rejects a pattern that names nothing; so do we.
		return nil, fmt.Errorf("condition: %s of %s names no search identifier", quant, target)
	case len(refs) == 1:
		return refs[0], nil
	case all:
		return andExpr(refs), nil
	}
	return orExpr(refs), nil
}
