package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/nats-io/nkeys"

	"github.com/vigil-sec/vigil/internal/process/cond"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Column int
	// Path is the field path, like "sources.apps.address".
	Path    string
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(":")
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	} else if p.File != "" {
		b.WriteString(" ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in a config; it is the error Load returns.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and checks the config file at path.
func Load(file string, reg Registry) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, file, reg)
}

type loader struct {
	file     string
	reg      Registry
	problems Problems
	pos      map[string]ast.Node // field path -> node, for positions in later checks
	// structural is set when the file is not a mapping at all: nothing else is checked.
	structural bool
}

// Parse checks a config given as YAML bytes; file names it in errors.
func Parse(data []byte, file string, reg Registry) (*Config, error) {
	l := &loader{file: file, reg: reg, pos: map[string]ast.Node{}}
	cfg := Defaults()
	cfg.File = file
	l.parse(data, cfg)
	if l.structural {
		return nil, l.problems
	}
	l.substitute(cfg)
	// Check what did decode even after errors, so one run reports every problem.
	l.check(cfg)
	if len(l.problems) > 0 {
		return nil, l.problems
	}
	if cfg.Processing.Validate.Enabled {
		p := Problem{File: file, Path: "processing.validate",
			Message: "deprecated: write it as a processor, `processing.processors: [{type: validate, datasets: …}]`; it runs after the configured processors"}
		if n, ok := l.pos["processing.validate"]; ok && n.GetToken() != nil {
			p.Line, p.Column = n.GetToken().Position.Line, n.GetToken().Position.Column
		}
		cfg.Warnings = append(cfg.Warnings, p)
	}
	return cfg, nil
}

func (l *loader) add(node ast.Node, path, format string, args ...any) {
	p := Problem{File: l.file, Path: path, Message: fmt.Sprintf(format, args...)}
	if node != nil {
		if tk := node.GetToken(); tk != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
	}
	l.problems = append(l.problems, p)
}

// addAt records a problem at the node remembered for path, or its nearest parent.
func (l *loader) addAt(path, format string, args ...any) {
	p := path
	for {
		if n, ok := l.pos[p]; ok {
			l.add(n, path, format, args...)
			return
		}
		// "sinks.x.inputs[1]" is at the position of "sinks.x.inputs".
		if i := strings.LastIndexByte(p, '['); i > 0 && strings.HasSuffix(p, "]") {
			p = p[:i]
			continue
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			l.add(nil, path, format, args...)
			return
		}
		p = p[:i]
	}
}

// addDecodeError turns a YAML decoding error into a positioned problem.
func (l *loader) addDecodeError(node ast.Node, path string, err error) {
	var ye yaml.Error
	if errors.As(err, &ye) {
		p := Problem{File: l.file, Path: path, Message: ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
		var uf *yaml.UnknownFieldError
		if errors.As(err, &uf) {
			p.Message = uf.Message + expectedFieldsHint(node)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) && te.DstType != nil {
			p.Message = fmt.Sprintf("wrong type: want %s", typeName(te.DstType.String()))
		}
		l.problems = append(l.problems, p)
		return
	}
	l.add(node, path, "%v", err)
}

// typeName turns a Go type into the words a YAML author knows.
func typeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case goType == "time.Duration":
		return "a duration such as 10s or 5m"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	}
	return goType
}

func expectedFieldsHint(ast.Node) string { return " (check the spelling; see docs/configuration.md)" }

func mappingValues(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, true
	case *ast.TagNode:
		return mappingValues(m.Value)
	case *ast.AnchorNode:
		return mappingValues(m.Value)
	}
	return nil, false
}

func keyString(mv *ast.MappingValueNode) string {
	if s, ok := mv.Key.(*ast.StringNode); ok {
		return s.Value
	}
	return strings.TrimSuffix(mv.Key.String(), ":")
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return n == nil || ok
}

func (l *loader) decode(node ast.Node, path string, v any) bool {
	if isNull(node) {
		return true
	}
	if err := yaml.NodeToValue(node, v, yaml.DisallowUnknownField()); err != nil {
		l.addDecodeError(node, path, err)
		return false
	}
	return true
}

func (l *loader) parse(data []byte, cfg *Config) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		l.addDecodeError(nil, "", err)
		l.structural = true
		return
	}
	if len(f.Docs) == 0 || f.Docs[0] == nil || isNull(f.Docs[0].Body) {
		l.add(nil, "", "the file is empty: it needs at least one source and one sink")
		l.structural = true
		return
	}
	if len(f.Docs) > 1 {
		l.add(f.Docs[1].Body, "", "only one YAML document is allowed")
	}
	top, ok := mappingValues(f.Docs[0].Body)
	if !ok {
		l.add(f.Docs[0].Body, "", "the top level must be a mapping of settings (data_dir, buffer, sources, sinks, …)")
		l.structural = true
		return
	}
	seen := map[string]bool{}
	for _, mv := range top {
		key := keyString(mv)
		l.pos[key] = mv.Key
		if seen[key] {
			l.add(mv.Key, key, "set twice")
			continue
		}
		seen[key] = true
		switch key {
		case "data_dir":
			l.decode(mv.Value, key, &cfg.DataDir)
		case "role":
			l.decode(mv.Value, key, &cfg.Role)
		case "node_name":
			l.decode(mv.Value, key, &cfg.NodeName)
		case "buffer":
			l.decode(mv.Value, key, &cfg.Buffer)
			l.remember(mv.Value, key)
		case "admin":
			l.decode(mv.Value, key, &cfg.Admin)
			l.remember(mv.Value, key)
		case "processing":
			l.parseProcessing(mv.Value, cfg)
		case "limits":
			l.decode(mv.Value, key, &cfg.Limits)
			l.remember(mv.Value, key)
		case "shutdown_timeout":
			l.decode(mv.Value, key, &cfg.ShutdownTimeout)
		case "sources":
			l.parseSources(mv.Value, cfg)
		case "sinks":
			l.parseSinks(mv.Value, cfg)
		default:
			l.add(mv.Key, key, "unknown setting; the top level takes data_dir, role, node_name, buffer, admin, processing, limits, shutdown_timeout, sources, sinks")
		}
	}
}

// remember records the position of every key below node, for later checks.
func (l *loader) remember(node ast.Node, path string) {
	mvs, ok := mappingValues(node)
	if !ok {
		return
	}
	for _, mv := range mvs {
		p := path + "." + keyString(mv)
		l.pos[p] = mv.Key
		l.remember(mv.Value, p)
	}
}

// componentEntries walks "sources:" or "sinks:", returning name/node pairs.
func (l *loader) componentEntries(node ast.Node, section string) []*ast.MappingValueNode {
	if isNull(node) {
		return nil
	}
	mvs, ok := mappingValues(node)
	if !ok {
		l.add(node, section, "must be a mapping from a name to its settings")
		return nil
	}
	seen := map[string]bool{}
	var out []*ast.MappingValueNode
	for _, mv := range mvs {
		name := keyString(mv)
		path := section + "." + name
		l.pos[path] = mv.Key
		if seen[name] {
			l.add(mv.Key, path, "defined twice")
			continue
		}
		seen[name] = true
		if !validName(name) {
			l.add(mv.Key, path, "a name may hold letters, digits, '_' and '-' only (it becomes a stream subject)")
			continue
		}
		out = append(out, mv)
	}
	return out
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// splitComponent separates the common keys (handled by fn) from the component's own,
// which it returns as a mapping node to decode into the typed config.
//
// at is the node that names the component (its key, or the list item), value its
// settings.
func (l *loader) splitComponent(at, value ast.Node, path string, common func(key string, v *ast.MappingValueNode) bool) (typ string, typeNode ast.Node, rest *ast.MappingNode, ok bool) {
	mvs, isMap := mappingValues(value)
	if !isMap {
		l.add(value, path, "must be a mapping with at least a type")
		return "", nil, nil, false
	}
	var own []*ast.MappingValueNode
	for _, kv := range mvs {
		key := keyString(kv)
		l.pos[path+"."+key] = kv.Key
		if key == "type" {
			typeNode = kv.Value
			if !l.decode(kv.Value, path+".type", &typ) {
				return "", nil, nil, false
			}
			continue
		}
		if common(key, kv) {
			continue
		}
		own = append(own, kv)
		l.remember(kv.Value, path+"."+key)
	}
	if typeNode == nil {
		l.add(at, path+".type", "missing: every component needs a type")
		return "", nil, nil, false
	}
	return typ, typeNode, ast.Mapping(value.GetToken(), false, own...), true
}

func (l *loader) parseSources(node ast.Node, cfg *Config) {
	for _, mv := range l.componentEntries(node, "sources") {
		src := &Source{Name: keyString(mv), KeepOriginal: true}
		path := "sources." + src.Name
		var formatOpts ast.Node
		typ, typeNode, rest, ok := l.splitComponent(mv.Key, mv.Value, path, func(key string, kv *ast.MappingValueNode) bool {
			switch key {
			case "format":
				l.decode(kv.Value, path+".format", &src.Format)
			case "format_options":
				formatOpts = kv.Value
				l.remember(kv.Value, path+".format_options")
			case "dataset":
				l.decode(kv.Value, path+".dataset", &src.Dataset)
			case "keep_original":
				l.decode(kv.Value, path+".keep_original", &src.KeepOriginal)
			default:
				return false
			}
			return true
		})
		if !ok {
			continue
		}
		src.Type = typ
		settings, known := l.reg.SourceConfig(typ)
		if !known {
			l.add(typeNode, path+".type", "unknown source type %q; known types: %s", typ, strings.Join(l.reg.SourceTypes(), ", "))
			continue
		}
		if l.decode(rest, path, settings) {
			src.Settings = settings
		}
		if src.Format == "" {
			src.Format = defaultFormat(settings)
		}
		if fc, ok := settings.(FormatChooser); ok && fc.ChoosesFormat(src.Format) {
			// The source picks a format per unit (and stores it with the records);
			// such units use their format's default options.
			if formatOpts != nil {
				l.addAt(path+".format_options", "format %q chooses a format per object; format_options apply to one named format", src.Format)
			}
			if fl, ok := settings.(FormatLister); ok {
				for _, f := range fl.ChosenFormats() {
					if _, known := l.reg.FormatConfig(f.Format); !known {
						l.addAt(path+"."+f.Path, "unknown format %q; known formats: %s", f.Format, strings.Join(l.reg.FormatNames(), ", "))
					}
				}
			}
			cfg.Sources = append(cfg.Sources, src)
			continue
		}
		opts, knownFormat := l.reg.FormatConfig(src.Format)
		if !knownFormat {
			l.addAt(path+".format", "unknown format %q; known formats: %s", src.Format, strings.Join(l.reg.FormatNames(), ", "))
		} else {
			if formatOpts != nil && l.decode(formatOpts, path+".format_options", opts) {
				src.FormatOptions = opts
			} else if formatOpts == nil {
				src.FormatOptions = opts
			}
		}
		cfg.Sources = append(cfg.Sources, src)
	}
}

// FormatDefaulter is implemented by source configs whose type implies a format.
type FormatDefaulter interface {
	DefaultFormat() string
}

// FormatChooser is implemented by source configs that accept a format name the
// registry does not know because the source chooses each unit's format itself (the
// s3 source's "auto", by key rules) and stores it in component.Records.Format.
type FormatChooser interface {
	ChoosesFormat(format string) bool
}

// FormatLister is implemented by a FormatChooser whose choices are named in its
// config (the s3 source's key rules), so that the loader rejects an unknown format
// at load time rather than when the first object arrives.
type FormatLister interface {
	ChosenFormats() []ChosenFormat
}

// ChosenFormat is a format named in a source's config, at Path below the source.
type ChosenFormat struct {
	Path   string // e.g. "key_rules[0].format"
	Format string
}

func defaultFormat(c Component) string {
	if d, ok := c.(FormatDefaulter); ok {
		return d.DefaultFormat()
	}
	return "json"
}

func (l *loader) parseSinks(node ast.Node, cfg *Config) {
	for _, mv := range l.componentEntries(node, "sinks") {
		snk := &Sink{Name: keyString(mv)}
		path := "sinks." + snk.Name
		typ, typeNode, rest, ok := l.splitComponent(mv.Key, mv.Value, path, func(key string, kv *ast.MappingValueNode) bool {
			if key == "inputs" {
				l.decode(kv.Value, path+".inputs", &snk.Inputs)
				return true
			}
			return false
		})
		if !ok {
			continue
		}
		snk.Type = typ
		settings, known := l.reg.SinkConfig(typ)
		if !known {
			l.add(typeNode, path+".type", "unknown sink type %q; known types: %s", typ, strings.Join(l.reg.SinkTypes(), ", "))
			continue
		}
		if l.decode(rest, path, settings) {
			snk.Settings = settings
		}
		cfg.Sinks = append(cfg.Sinks, snk)
	}
}

// parseProcessing decodes the processing section; its processors list is parsed
// entry by entry like the components.
func (l *loader) parseProcessing(node ast.Node, cfg *Config) {
	l.remember(node, "processing")
	mvs, ok := mappingValues(node)
	if !ok {
		l.decode(node, "processing", &cfg.Processing)
		return
	}
	var rest []*ast.MappingValueNode
	for _, mv := range mvs {
		if keyString(mv) == "processors" {
			l.parseProcessors(mv.Value, cfg)
			continue
		}
		rest = append(rest, mv)
	}
	if len(rest) > 0 {
		l.decode(ast.Mapping(node.GetToken(), false, rest...), "processing", &cfg.Processing)
	}
}

func (l *loader) parseProcessors(node ast.Node, cfg *Config) {
	if isNull(node) {
		return
	}
	seq, ok := node.(*ast.SequenceNode)
	if !ok {
		l.add(node, "processing.processors", "must be a list of processors, each with a type")
		return
	}
	names := map[string]bool{}
	for i, item := range seq.Values {
		path := fmt.Sprintf("processing.processors[%d]", i)
		// A problem of the entry as a whole points at its "-", not at the first
		// key's colon (a flow list has no entries).
		var at ast.Node = item
		if i < len(seq.Entries) && seq.Entries[i] != nil && seq.Entries[i].GetToken() != nil {
			at = seq.Entries[i]
		}
		l.pos[path] = at
		// Every entry takes its place in the list, even a broken one, so that the
		// later checks name and place processors[i] by its index in the file.
		pc := &Processor{}
		cfg.Processing.Processors = append(cfg.Processing.Processors, pc)
		typ, typeNode, rest, ok := l.splitComponent(at, item, path, func(key string, kv *ast.MappingValueNode) bool {
			switch key {
			case "name":
				l.decode(kv.Value, path+".name", &pc.Name)
			case "if":
				l.decode(kv.Value, path+".if", &pc.If)
			default:
				return false
			}
			return true
		})
		if !ok {
			continue
		}
		pc.Type = typ
		if pc.Name != "" {
			if names[pc.Name] {
				l.addAt(path+".name", "%q is the name of an earlier processor; names must be unique", pc.Name)
			}
			names[pc.Name] = true
		}
		settings, known := l.reg.ProcessorConfig(typ)
		if !known {
			l.add(typeNode, path+".type", "unknown processor type %q; known types: %s", typ, strings.Join(l.reg.ProcessorTypes(), ", "))
			continue
		}
		if l.decode(rest, path, settings) {
			pc.Settings = settings
		}
	}
}

// check validates every value and the references across the graph.
//
// After decoding or substitution problems it stays quiet about their consequences: a
// component that already has a problem is not checked again, and the checks across
// the graph ("no sources") are skipped, since a broken entry may be the reason.
func (l *loader) check(cfg *Config) {
	earlier := len(l.problems) > 0
	blamed := map[string]bool{}
	for _, p := range l.problems {
		blamed[componentOf(p.Path)] = true
	}
	for _, p := range cfg.validate() {
		if earlier && (blamed[componentOf(p.Path)] || p.Path == "sources" || p.Path == "sinks" || strings.HasSuffix(p.Path, ".inputs") && strings.Contains(p.Message, "matches no dataset")) {
			continue
		}
		l.addAt(p.Path, "%s", p.Message)
	}
}

// componentOf returns "sources.x" or "sinks.x" for a path below a component, else the
// first segment.
func componentOf(path string) string {
	parts := strings.SplitN(path, ".", 3)
	if len(parts) >= 2 && (parts[0] == "sources" || parts[0] == "sinks" || parts[0] == "processing" && strings.HasPrefix(parts[1], "processors[")) {
		return parts[0] + "." + parts[1]
	}
	return parts[0]
}

// validate runs the checks that need no file positions; Parse adds them.
func (c *Config) validate() Problems {
	var ps Problems
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if c.DataDir == "" {
		add("data_dir", "must not be empty")
	}
	switch c.Role {
	case RoleAll, RoleIngest, RoleProcess:
	default:
		add("role", "want all, ingest or process, got %q", c.Role)
	}
	b := c.Buffer
	switch b.Type {
	case "embedded":
		if len(b.URLs) > 0 {
			add("buffer.urls", "only for type nats; the embedded buffer has no URLs")
		}
		if b.Replicas != 1 {
			add("buffer.replicas", "the embedded buffer has exactly 1 replica; use type nats with a cluster for more")
		}
		checkListen(b, add)
	case "nats":
		if len(b.URLs) == 0 {
			add("buffer.urls", "type nats needs at least one server URL, like nats://127.0.0.1:4222")
		}
		for i, raw := range b.URLs {
			// Echo the URL redacted: it may hold a password or a token.
			u, err := url.Parse(withScheme(raw))
			switch {
			case err != nil || u.Host == "":
				add(fmt.Sprintf("buffer.urls[%d]", i), "want a server URL such as nats://127.0.0.1:4222, got %q", RedactURL(raw))
			case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
				add(fmt.Sprintf("buffer.urls[%d]", i), "want a nats, tls, ws or wss URL, got %q", RedactURL(raw))
			}
		}
		if b.Replicas < 1 || b.Replicas > 5 {
			add("buffer.replicas", "want 1 to 5, got %d", b.Replicas)
		}
		if b.Listen != "" {
			add("buffer.listen", "only for the embedded buffer")
		}
		if b.ListenAuth.Enabled() {
			add("buffer.listen_auth", "only for the embedded buffer")
		}
		if b.ListenTLS.Enabled() {
			add("buffer.listen_tls", "only for the embedded buffer")
		}
	default:
		add("buffer.type", "want embedded or nats, got %q", b.Type)
	}
	switch b.Sync {
	case "always", "interval":
	default:
		add("buffer.sync", "want always (fsync before acknowledging; survives power loss) or interval (survives a process crash only), got %q", b.Sync)
	}
	if b.Sync == "interval" && b.SyncInterval <= 0 {
		add("buffer.sync_interval", "must be positive")
	}
	// A slice, not a map: problems must come out in the same order on every run.
	for _, sr := range []struct {
		name string
		r    Retention
	}{{"intake", b.Intake}, {"events", b.Events}, {"dlq", b.DLQ.Retention}} {
		name, r := sr.name, sr.r
		if r.MaxAge <= 0 {
			add("buffer."+name+".max_age", "must be positive")
		}
		if r.MaxBytes < 1<<20 {
			add("buffer."+name+".max_bytes", "must be at least 1MiB")
		}
	}
	if b.DLQ.Overflow != DLQDropNewer && b.DLQ.Overflow != DLQDropOlder {
		add("buffer.dlq.overflow", "want drop_newer or drop_older, got %q", b.DLQ.Overflow)
	}
	if b.DuplicateWindow <= 0 || b.DuplicateWindow > b.Intake.MaxAge {
		add("buffer.duplicate_window", "must be positive and no longer than buffer.intake.max_age")
	}
	if b.PublishTimeout < 100*time.Millisecond {
		add("buffer.publish_timeout", "must be at least 100ms")
	}
	if b.AckWait < time.Second {
		add("buffer.ack_wait", "must be at least 1s")
	}
	if b.LeaseTTL < time.Second {
		add("buffer.lease_ttl", "must be at least 1s")
	}
	checkAdmin(c.Admin, add)
	if c.Processing.Workers < 1 || c.Processing.Workers > 256 {
		add("processing.workers", "want 1 to 256, got %d", c.Processing.Workers)
	}
	if c.Processing.Fetch < 1 || c.Processing.Fetch > 4096 {
		add("processing.fetch", "want 1 to 4096, got %d", c.Processing.Fetch)
	}
	switch c.Processing.EventsCompression {
	case "auto", "s2", "gzip", "zstd":
	default:
		add("processing.events_compression", "want auto, s2, gzip or zstd, got %q", c.Processing.EventsCompression)
	}
	ps = append(ps, componentProblems("processing.validate", c.Processing.Validate.Validate())...)
	for i, pc := range c.Processing.Processors {
		at := fmt.Sprintf("processing.processors[%d]", i)
		if nc, ok := pc.Settings.(NameChecker); ok {
			if err := nc.CheckName(pc.Name); err != nil {
				add(at+".name", "%v", err)
			}
		}
		if pc.If != "" {
			if _, err := cond.CompileBool(pc.If); err != nil {
				add(at+".if", "%v", err)
			}
		}
		if pc.Settings != nil {
			ps = append(ps, componentProblems(at, pc.Settings.Validate())...)
		}
	}
	if c.Limits.Memory < 64<<20 {
		add("limits.memory", "must be at least 64MiB, got %d bytes", c.Limits.Memory)
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown_timeout", "must be positive")
	}
	for _, s := range c.Sources {
		path := "sources." + s.Name
		if s.Settings != nil {
			ps = append(ps, componentProblems(path, s.Settings.Validate())...)
		}
		if s.FormatOptions != nil {
			ps = append(ps, componentProblems(path+".format_options", s.FormatOptions.Validate())...)
		}
		if s.Dataset != "" && !validDataset(s.Dataset) {
			add(path+".dataset", "a dataset may hold letters, digits, '_', '-' and '.' only, got %q", s.Dataset)
		}
	}
	for _, s := range c.Sinks {
		at := "sinks." + s.Name
		if s.Settings != nil {
			ps = append(ps, componentProblems(at, s.Settings.Validate())...)
		}
		if len(s.Inputs) == 0 {
			add(at+".inputs", "missing: name the datasets this sink takes, like [\"*\"] or [\"aws.*\"]")
		}
		for i, in := range s.Inputs {
			if _, err := path.Match(in, "x"); err != nil || in == "" {
				add(fmt.Sprintf("%s.inputs[%d]", at, i), "bad glob %q", in)
			}
		}
	}
	if c.RunsSources() && len(c.Sources) == 0 && !c.Embedded {
		add("sources", "no sources: this node (role %s) would receive nothing", c.Role)
	}
	if c.RunsSinks() && len(c.Sinks) == 0 && !c.Embedded {
		add("sinks", "no sinks: events would have nowhere to go")
	}
	for _, p := range c.checkUnusedSinks() {
		ps = append(ps, p)
	}
	return ps
}

// checkListen checks the embedded server's listener: a port others can reach needs
// credentials and TLS, since it gives access to every stream.
func checkListen(b Buffer, add func(path, format string, args ...any)) {
	a, t := b.ListenAuth, b.ListenTLS
	if b.Listen == "" {
		if a.Enabled() {
			add("buffer.listen_auth", "only with buffer.listen (without it no port is opened)")
		}
		if t.Enabled() {
			add("buffer.listen_tls", "only with buffer.listen (without it no port is opened)")
		}
		return
	}
	host, _, err := net.SplitHostPort(b.Listen)
	if err != nil {
		add("buffer.listen", "want host:port, got %q", b.Listen)
		return
	}
	if a.User != "" && a.Password == "" {
		add("buffer.listen_auth.password", "missing: user needs a password")
	}
	if a.Password != "" && a.User == "" {
		add("buffer.listen_auth.user", "missing: password needs a user")
	}
	switch {
	case a.NKey == "":
	case strings.HasPrefix(a.NKey, "S"):
		// Never echo it: a seed is the private key.
		add("buffer.listen_auth.nkey", "this is an nkey seed, the secret half: give the public key (U…, `nk -inkey FILE -pubout`) and keep the seed with the client")
	case !nkeys.IsValidPublicUserKey(a.NKey):
		add("buffer.listen_auth.nkey", "want the public key of a user nkey (56 characters starting with U)")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("buffer.listen_tls", "set both cert_file and key_file")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		add("buffer.listen_tls.client_ca_file", "needs cert_file and key_file")
	}
	if IsLoopback(host) {
		return
	}
	authed := a.User != "" && a.Password != "" || a.NKey != ""
	switch {
	case !authed && t.CertFile == "":
		add("buffer.listen", "%s is reachable from other machines but has neither credentials (buffer.listen_auth) nor TLS (buffer.listen_tls): anyone who reaches the port could read, write and delete the streams; set listen_auth (user and password, or nkey) and listen_tls (cert_file and key_file), or listen on 127.0.0.1", b.Listen)
	case !authed:
		add("buffer.listen", "%s is reachable from other machines but has no credentials (buffer.listen_auth): anyone who reaches the port could read, write and delete the streams; set user and password, or nkey, or listen on 127.0.0.1", b.Listen)
	case t.CertFile == "":
		add("buffer.listen", "%s is reachable from other machines but has no TLS (buffer.listen_tls): credentials and events would cross the network in clear text; set cert_file and key_file, or listen on 127.0.0.1", b.Listen)
	}
}

// minTokenLen is the shortest admin.token accepted: the API has no rate limit, so a
// token must not be guessable.
const minTokenLen = 16

// checkAdmin checks the admin listener: a non-loopback address needs a token.
func checkAdmin(a Admin, add func(path, format string, args ...any)) {
	if a.Token != "" {
		// Never echo the token.
		printable := true
		for i := 0; i < len(a.Token); i++ {
			if a.Token[i] <= ' ' || a.Token[i] >= 0x7f {
				printable = false
			}
		}
		switch {
		case !printable:
			add("admin.token", "may hold printable ASCII characters only, no spaces (it is sent in an HTTP header)")
		case len(a.Token) < minTokenLen:
			add("admin.token", "too short: want at least %d characters, such as the output of `openssl rand -hex 32`", minTokenLen)
		}
	}
	if a.Address == "" {
		return
	}
	host, _, err := net.SplitHostPort(a.Address)
	if err != nil {
		add("admin.address", "want host:port, got %q", a.Address)
		return
	}
	if a.Token == "" && !IsLoopback(host) {
		add("admin.address", "%s is reachable from other machines but admin.token is not set: anyone who reaches it could read dead letters (raw evidence), replay them and scrape /metrics; set admin.token (such as ${VIGIL_ADMIN_TOKEN}), or listen on 127.0.0.1", a.Address)
	}
}

// checkUnusedSinks flags a sink whose inputs match no dataset a source can produce,
// when every source's dataset is known.
func (c *Config) checkUnusedSinks() Problems {
	var datasets []string
	for _, s := range c.Sources {
		if s.Dataset == "" {
			return nil // dataset chosen at run time; nothing to check
		}
		datasets = append(datasets, s.Dataset)
	}
	if len(datasets) == 0 {
		return nil
	}
	var ps Problems
	for _, s := range c.Sinks {
		used := slices.ContainsFunc(s.Inputs, func(in string) bool {
			return slices.ContainsFunc(datasets, func(ds string) bool {
				ok, _ := path.Match(in, ds)
				return ok
			})
		})
		if !used {
			ps = append(ps, Problem{Path: "sinks." + s.Name + ".inputs",
				Message: fmt.Sprintf("matches no dataset of any source (%s)", strings.Join(datasets, ", "))})
		}
	}
	return ps
}

// componentProblems splits a joined error into one problem each.
func componentProblems(path string, err error) Problems {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var ps Problems
		for _, e := range j.Unwrap() {
			ps = append(ps, componentProblems(path, e)...)
		}
		return ps
	}
	return Problems{componentProblem(path, err)}
}

// componentProblem places a component's Validate error under its path: an error
// that starts with "option: message" points at that option.
func componentProblem(path string, err error) Problem {
	msg := err.Error()
	if opt, rest, ok := strings.Cut(msg, ": "); ok && validOption(opt) {
		return Problem{Path: path + "." + opt, Message: rest}
	}
	return Problem{Path: path, Message: msg}
}

func validOption(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

func validDataset(s string) bool {
	if s == "" || len(s) > 100 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ValidDataset reports whether s can be a dataset (it becomes a subject token).
func ValidDataset(s string) bool { return validDataset(s) }

// Validate checks a config built in code (such as the embedded default).
func (c *Config) Validate() error {
	if ps := c.validate(); len(ps) > 0 {
		return ps
	}
	return nil
}
