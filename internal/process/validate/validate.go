package validate

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed schemas/*.json
var schemaFS embed.FS

// SchemaBaseURL is the $id prefix of the shipped schemas: a user schema can $ref
// SchemaBaseURL+"ecs-base.json" (or a dataset's schema, or one of its $defs). Nothing
// is ever fetched from it: the schemas are embedded, and .invalid is a reserved domain.
const SchemaBaseURL = "https://vigil.invalid/schemas/"

// baseName is the file of the schema every event must meet.
const baseName = "ecs-base"

// Datasets returns the names of the datasets Vigil ships schemas for, sorted.
func Datasets() []string {
	entries, _ := fs.ReadDir(schemaFS, "schemas")
	var names []string
	for _, e := range entries {
		if n := strings.TrimSuffix(e.Name(), ".json"); n != baseName {
			names = append(names, n)
		}
	}
	return names
}

// maxCached bounds the per-dataset cache: datasets can come from senders (an http
// source's path, a batch's header), and resolving an uncached one is cheap anyway.
const maxCached = 4096

// maxViolations bounds how many problems one error lists.
const maxViolations = 5

// maxMessage bounds one problem's text, which may quote a (long) value of the event.
const maxMessage = 200

// Validator checks ECS documents against the schemas of their dataset. It is safe for
// concurrent use: the compiled schemas are read-only, and the per-dataset cache is
// guarded.
type Validator struct {
	base          *jsonschema.Schema
	shipped       map[string]*jsonschema.Schema
	exact         map[string]rule
	globs         []rule // longest pattern first
	requireSchema bool

	// printer words the library's messages (in English, like the rest of Vigil).
	printer *message.Printer

	// cache maps a dataset to its *plan. A sync.Map, not a mutex: after warm-up it is
	// only read, by every worker for every event.
	cache  sync.Map
	cached atomic.Int64
}

// rule is one entry of Config.Datasets, compiled.
type rule struct {
	pattern string
	value   string             // Builtin, BaseOnly or a file path
	schema  *jsonschema.Schema // for a file
}

// plan is what a dataset is checked against, in order.
type plan struct {
	schemas []named
	// missing is set when the dataset has no schema and one is required.
	missing bool
}

type named struct {
	name   string // for errors: the dataset's shipped schema, ecs-base or a file path
	schema *jsonschema.Schema
}

// New compiles the base schema, every shipped schema and the files cfg names, once.
// Errors name the schema file and, for a schema that is not valid, the JSON pointer
// of the problem inside it.
func New(cfg *Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	names := Datasets()
	for _, n := range append([]string{baseName}, names...) {
		data, err := schemaFS.ReadFile("schemas/" + n + ".json")
		if err != nil {
			return nil, fmt.Errorf("shipped schema %s: %w", n, err)
		}
		doc, err := decodeSchema(data)
		if err != nil {
			return nil, fmt.Errorf("shipped schema %s.json: %w", n, err)
		}
		if err := c.AddResource(SchemaBaseURL+n+".json", doc); err != nil {
			return nil, fmt.Errorf("shipped schema %s.json: %w", n, err)
		}
	}
	v := &Validator{
		shipped:       make(map[string]*jsonschema.Schema, len(names)),
		exact:         map[string]rule{},
		requireSchema: cfg.RequireSchema,
		printer:       message.NewPrinter(language.English),
	}
	var err error
	if v.base, err = c.Compile(SchemaBaseURL + baseName + ".json"); err != nil {
		return nil, fmt.Errorf("shipped schema %s.json: %s", baseName, v.compileMessage(err))
	}
	for _, n := range names {
		if v.shipped[n], err = c.Compile(SchemaBaseURL + n + ".json"); err != nil {
			return nil, fmt.Errorf("shipped schema %s.json: %s", n, v.compileMessage(err))
		}
	}
	var errs []error
	for _, pattern := range sortedKeys(cfg.Datasets) {
		r := rule{pattern: pattern, value: cfg.Datasets[pattern]}
		if r.value != Builtin && r.value != BaseOnly {
			r.schema, err = v.compileFile(c, r.value)
			if err != nil {
				errs = append(errs, fmt.Errorf("datasets: %q: %w", pattern, err))
				continue
			}
		}
		if isGlob(pattern) {
			v.globs = append(v.globs, r)
		} else {
			v.exact[pattern] = r
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Most specific first; ties in the order of the sorted keys, so the choice is
	// the same on every node.
	sort.SliceStable(v.globs, func(i, j int) bool { return len(v.globs[i].pattern) > len(v.globs[j].pattern) })
	return v, nil
}

// compileFile compiles an operator's schema file. It is read here rather than by the
// compiler's loader so that a JSON syntax error can be reported with its line.
func (v *Validator) compileFile(c *jsonschema.Compiler, file string) (*jsonschema.Schema, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %w", file, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("schema file: %w", err)
	}
	u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	doc, err := decodeSchema(data)
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %w", file, err)
	}
	// Two patterns may name the same file: it is compiled once.
	if err := c.AddResource(u, doc); err != nil && !isResourceExists(err) {
		return nil, fmt.Errorf("schema file %s: %w", file, err)
	}
	s, err := c.Compile(u)
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %s", file, v.compileMessage(err))
	}
	return s, nil
}

func isResourceExists(err error) bool {
	var re *jsonschema.ResourceExistsError
	return errors.As(err, &re)
}

// decodeSchema decodes a schema document, giving line and column of a syntax error.
func decodeSchema(data []byte) (any, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err == nil {
		return doc, nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, se.Offset)
		return nil, fmt.Errorf("line %d column %d: not valid JSON: %v", line, col, err)
	}
	return nil, fmt.Errorf("not valid JSON: %w", err)
}

func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

// compileMessage words a compiler error: for a schema that breaks the meta-schema,
// the JSON pointers inside the schema document of what is wrong.
func (v *Validator) compileMessage(err error) string {
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			return "not a valid JSON Schema: " + formatViolations(violations(ve, v.printer))
		}
	}
	return err.Error()
}

// Check validates one encoded event (as the pipeline emits it) of dataset. It returns
// nil, or an *Error listing what is wrong with JSON pointers into the document. doc is
// only read during the call.
func (v *Validator) Check(dataset string, doc []byte) error {
	p := v.plan(dataset)
	if p.missing {
		return &Error{Dataset: dataset, Violations: []Violation{{
			Keyword: "require_schema",
			Message: "no schema for this dataset and require_schema is set; map it in validate datasets",
		}}}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return &Error{Dataset: dataset, Violations: []Violation{{Message: "not a JSON document: " + err.Error()}}}
	}
	for _, s := range p.schemas {
		err := s.schema.Validate(inst)
		if err == nil {
			continue
		}
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return &Error{Dataset: dataset, Schema: s.name, Violations: []Violation{{Message: err.Error()}}}
		}
		return &Error{Dataset: dataset, Schema: s.name, Violations: violations(ve, v.printer)}
	}
	return nil
}

// plan returns the schemas of a dataset, from the cache when it can.
func (v *Validator) plan(dataset string) *plan {
	if p, ok := v.cache.Load(dataset); ok {
		return p.(*plan)
	}
	p := v.resolve(dataset)
	// Racing workers may both add: the bound is approximate, which is all it needs.
	if v.cached.Load() < maxCached {
		if _, loaded := v.cache.LoadOrStore(dataset, p); !loaded {
			v.cached.Add(1)
		}
	}
	return p
}

func (v *Validator) resolve(dataset string) *plan {
	r, ok := v.exact[dataset]
	if !ok {
		for _, g := range v.globs {
			if m, _ := path.Match(g.pattern, dataset); m {
				r, ok = g, true
				break
			}
		}
	}
	if !ok {
		r.value = Builtin
	}
	baseOnly := &plan{schemas: []named{{baseName, v.base}}}
	switch r.value {
	case BaseOnly:
		return baseOnly
	case Builtin:
		// A shipped schema includes the base one by $ref.
		if s, ok := v.shipped[dataset]; ok {
			return &plan{schemas: []named{{dataset, s}}}
		}
		if v.requireSchema {
			return &plan{missing: true}
		}
		return baseOnly
	default:
		// The base first: its errors are about the pipeline's own fields.
		return &plan{schemas: []named{{baseName, v.base}, {r.value, r.schema}}}
	}
}

// Error is a document that does not meet its dataset's schema.
type Error struct {
	// Dataset is the dataset the document was checked as.
	Dataset string
	// Schema names the failed schema: a shipped dataset's name, "ecs-base" or a file.
	Schema string
	// Violations are the problems found (at most a few).
	Violations []Violation
}

// Violation is one problem of a document.
type Violation struct {
	// Pointer is the JSON pointer of the offending value in the document ("" for
	// the document itself).
	Pointer string
	// Keyword is the schema keyword that failed (type, format, required, …).
	Keyword string
	// Message says what is wrong.
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dataset ")
	b.WriteString(e.Dataset)
	if e.Schema != "" {
		b.WriteString(": schema ")
		b.WriteString(e.Schema)
	}
	b.WriteString(": ")
	b.WriteString(formatViolations(e.Violations))
	return b.String()
}

func (v Violation) String() string {
	var b strings.Builder
	switch {
	case v.Pointer != "":
		b.WriteString(v.Pointer)
		b.WriteString(": ")
	case v.Keyword != "":
		// A problem of the document itself (a missing top-level field).
		b.WriteString("(document): ")
	}
	b.WriteString(v.Message)
	if v.Keyword != "" {
		b.WriteString(" (")
		b.WriteString(v.Keyword)
		b.WriteString(")")
	}
	return b.String()
}

func formatViolations(vs []Violation) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		parts = append(parts, v.String())
	}
	return strings.Join(parts, "; ")
}

// violations turns the library's error tree into its leaves: the errors that say what
// is wrong, not which schema composition contained them.
func violations(ve *jsonschema.ValidationError, p *message.Printer) []Violation {
	var out []Violation
	collect(ve, p, func(v Violation) { out = append(out, v) })
	// The library walks objects in map order: sort, so the same document always
	// gets the same reason.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pointer != out[j].Pointer {
			return out[i].Pointer < out[j].Pointer
		}
		return out[i].Message < out[j].Message
	})
	if n := len(out); n > maxViolations {
		out = append(out[:maxViolations], Violation{Message: fmt.Sprintf("and %d more", n-maxViolations)})
	}
	return out
}

func collect(ve *jsonschema.ValidationError, p *message.Printer, emit func(Violation)) {
	switch ve.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
		// Every alternative failed: say why only for the ones that got deepest
		// into the document, which are the ones that were meant.
		var leaves []*jsonschema.ValidationError
		for _, c := range ve.Causes {
			leaves = appendLeaves(leaves, c)
		}
		deepest := 0
		for _, l := range leaves {
			deepest = max(deepest, len(l.InstanceLocation))
		}
		var msgs []string
		for _, l := range leaves {
			if len(l.InstanceLocation) == deepest {
				msgs = append(msgs, describe(l.ErrorKind, p))
			}
		}
		if len(msgs) == 0 {
			emit(leaf(ve, p))
			return
		}
		loc := ve.InstanceLocation
		for _, l := range leaves {
			if len(l.InstanceLocation) == deepest {
				loc = l.InstanceLocation
				break
			}
		}
		emit(Violation{
			Pointer: pointer(loc),
			Keyword: keyword(ve),
			Message: truncate(strings.Join(msgs, ", or ")),
		})
		return
	}
	if len(ve.Causes) == 0 {
		emit(leaf(ve, p))
		return
	}
	for _, c := range ve.Causes {
		collect(c, p, emit)
	}
}

func appendLeaves(dst []*jsonschema.ValidationError, ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return append(dst, ve)
	}
	for _, c := range ve.Causes {
		dst = appendLeaves(dst, c)
	}
	return dst
}

func leaf(ve *jsonschema.ValidationError, p *message.Printer) Violation {
	return Violation{
		Pointer: pointer(ve.InstanceLocation),
		Keyword: keyword(ve),
		Message: truncate(describe(ve.ErrorKind, p)),
	}
}

// describe words one error. The base schema lets optional fields be null (absent, as
// in Elasticsearch); naming null among the wanted types would only distract.
func describe(k jsonschema.ErrorKind, p *message.Printer) string {
	if t, ok := k.(*kind.Type); ok && len(t.Want) > 1 {
		want := make([]string, 0, len(t.Want))
		for _, w := range t.Want {
			if w != "null" {
				want = append(want, w)
			}
		}
		return p.Sprintf("got %s, want %s", t.Got, strings.Join(want, " or "))
	}
	return k.LocalizedString(p)
}

func keyword(ve *jsonschema.ValidationError) string {
	kp := ve.ErrorKind.KeywordPath()
	if len(kp) == 0 {
		return ""
	}
	return kp[len(kp)-1]
}

// pointer builds a JSON pointer (RFC 6901) from reference tokens.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}
