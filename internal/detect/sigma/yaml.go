package sigma

import (
	"fmt"
	"strconv"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// node is a YAML value with the line it starts on, so that every problem in a rule can
// be reported as file:line. Maps keep their key order.
type node struct {
	kind  nodeKind
	line  int
	str   string // scalar text (strings, numbers, booleans in their YAML form)
	keys  []string
	kline []int // line of each key
	vals  []*node
}

type nodeKind uint8

const (
	nNull nodeKind = iota
	nString
	nInt
	nFloat
	nBool
	nMap
	nSeq
)

// get returns the value of key in a map node, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != nMap {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// text returns a scalar's text, "" for maps, sequences and null.
func (n *node) text() string {
	if n == nil || n.kind == nMap || n.kind == nSeq || n.kind == nNull {
		return ""
	}
	return n.str
}

// parseYAML parses data into its documents (empty ones left out).
func parseYAML(data []byte) ([]*node, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, err
	}
	var docs []*node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		n, err := convert(d.Body)
		if err != nil {
			return nil, err
		}
		if n.kind == nNull {
			continue
		}
		docs = append(docs, n)
	}
	return docs, nil
}

func lineOf(n ast.Node) int {
	if t := n.GetToken(); t != nil && t.Position != nil {
		return t.Position.Line
	}
	return 0
}

func convert(n ast.Node) (*node, error) {
	switch x := n.(type) {
	case nil:
		return &node{kind: nNull}, nil
	case *ast.NullNode:
		return &node{kind: nNull, line: lineOf(x)}, nil
	case *ast.StringNode:
		return &node{kind: nString, line: lineOf(x), str: x.Value}, nil
	case *ast.LiteralNode:
		return &node{kind: nString, line: lineOf(x), str: x.Value.Value}, nil
	case *ast.IntegerNode:
		var s string
		switch v := x.Value.(type) {
		case int64:
			s = strconv.FormatInt(v, 10)
		case uint64:
			s = strconv.FormatUint(v, 10)
		default:
			s = fmt.Sprint(v)
		}
		return &node{kind: nInt, line: lineOf(x), str: s}, nil
	case *ast.FloatNode:
		return &node{kind: nFloat, line: lineOf(x), str: strconv.FormatFloat(x.Value, 'g', -1, 64)}, nil
	case *ast.BoolNode:
		return &node{kind: nBool, line: lineOf(x), str: strconv.FormatBool(x.Value)}, nil
	case *ast.TagNode:
		return convert(x.Value)
	case *ast.AnchorNode:
		return convert(x.Value)
	case *ast.AliasNode:
		return nil, fmt.Errorf("line %d: unsupported feature YAML alias", lineOf(x))
	case *ast.MappingValueNode:
		return convertMap(x, []*ast.MappingValueNode{x})
	case *ast.MappingNode:
		return convertMap(x, x.Values)
	case *ast.SequenceNode:
		out := &node{kind: nSeq, line: lineOf(x)}
		for _, v := range x.Values {
			c, err := convert(v)
			if err != nil {
				return nil, err
			}
			out.vals = append(out.vals, c)
		}
		return out, nil
	case *ast.CommentGroupNode, *ast.CommentNode:
		return &node{kind: nNull}, nil
	}
	return nil, fmt.Errorf("line %d: unsupported feature YAML node %s", lineOf(n), n.Type())
}

func convertMap(at ast.Node, mvs []*ast.MappingValueNode) (*node, error) {
	out := &node{kind: nMap, line: lineOf(at)}
	for _, mv := range mvs {
		k, err := convert(mv.Key)
		if err != nil {
			return nil, err
		}
		if k.kind == nMap || k.kind == nSeq {
			return nil, fmt.Errorf("line %d: unsupported feature complex map key", lineOf(mv.Key))
		}
		v, err := convert(mv.Value)
		if err != nil {
			return nil, err
		}
		if v.line == 0 {
			v.line = lineOf(mv.Key)
		}
		out.keys = append(out.keys, k.str)
		out.kline = append(out.kline, lineOf(mv.Key))
		out.vals = append(out.vals, v)
	}
	if len(mvs) > 0 {
		out.line = lineOf(mvs[0].Key)
	}
	return out, nil
}
