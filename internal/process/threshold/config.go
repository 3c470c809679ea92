// Package threshold is the threshold detection rule: it counts or aggregates the
// events its `if` holds for, per group (group_by fields) and per time window of the
// events' own @timestamp, and raises an alert when the rule's condition over the
// aggregates holds.
//
// The processor on each worker does not aggregate: it turns each matching event into
// a compact sample (event time, event id, group key, the aggregated fields' values)
// that the processing stage publishes to the aggregation stream (subject
// vigil.agg.<rule>) with the record's events, before the record is acknowledged. One
// Aggregator per rule, on whichever node holds the rule's lease, consumes them in
// stream order, keeps the windows, snapshots them with the stream sequence they cover
// and publishes alerts to the events stream. See docs/detection.md for why.
package threshold

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/internal/config"
)

// Config configures threshold.
type Config struct {
	// GroupBy are the fields whose values make the group key (source.ip, url.domain);
	// events without one of them are not counted. Empty: one group.
	GroupBy []string `yaml:"group_by"`
	// Window is the length of the time window.
	Window time.Duration `yaml:"window"`
	// WindowType is sliding (evaluated on each event over the last window) or
	// tumbling (fixed windows, evaluated when they close).
	WindowType string `yaml:"window_type"`
	// Aggregate maps a name to an aggregate: count, distinct <field>, sum <field>,
	// avg <field>, min <field>, max <field>, p50 <field>, p95 <field>, p99 <field>.
	// A bare field after a name that is itself an aggregate (p95: x) means that
	// aggregate of x. Default: {count: count}.
	Aggregate map[string]string `yaml:"aggregate"`
	// Condition is an expr expression over the aggregate names, like "p95 > 2".
	Condition string `yaml:"condition"`
	// Level is the alert's severity: low, medium, high or critical.
	Level string `yaml:"level"`
	// Lateness is how far behind the newest event time seen an event may be and
	// still count; older events are dropped and counted as late.
	Lateness time.Duration `yaml:"lateness"`
	// MaxGroups bounds the groups held; beyond it the least recently updated group
	// is evicted (counted).
	MaxGroups int `yaml:"max_groups"`
	// MaxDistinct bounds the distinct values held per group and window; beyond it a
	// distinct count saturates at the bound.
	MaxDistinct int `yaml:"max_distinct"`
	// Suppress is the time after an alert during which the same group raises no
	// other alert. Default: the window.
	Suppress time.Duration `yaml:"suppress"`
	// LeaseTTL is how long a node holds the rule's aggregator lease without renewing
	// it; after a crash, another node takes over within it.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// SnapshotInterval is how often the aggregator saves its windows; a takeover
	// replays the samples stored since.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
}

// NewConfig returns a config with the defaults.
func NewConfig() *Config {
	return &Config{WindowType: "sliding", Level: "medium", Lateness: time.Minute, MaxGroups: 10000, MaxDistinct: 10000,
		LeaseTTL: 10 * time.Second, SnapshotInterval: 5 * time.Second}
}

// Levels are the alert levels and the ECS event.severity each maps to (the scores
// Elastic's detection rules use).
var Levels = map[string]int64{"low": 21, "medium": 47, "high": 73, "critical": 99}

var namePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate implements config.Component.
func (c *Config) Validate() error {
	var errs []error
	for i, f := range c.GroupBy {
		if err := checkField(fmt.Sprintf("group_by[%d]", i), f); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Window <= 0 {
		errs = append(errs, errors.New("window: missing: give a duration, like 5m"))
	}
	if c.WindowType != "sliding" && c.WindowType != "tumbling" {
		errs = append(errs, fmt.Errorf("window_type: %q: want sliding or tumbling", c.WindowType))
	}
	if _, err := c.aggregates(); err != nil {
		errs = append(errs, err)
	}
	if c.Condition == "" {
		errs = append(errs, errors.New(`condition: missing: an expression over the aggregates, like "count >= 10"`))
	} else if aggs, err := c.aggregates(); err == nil {
		if _, err := compileCondition(c.Condition, aggs); err != nil {
			errs = append(errs, fmt.Errorf("condition: %w", err))
		}
	}
	if _, ok := Levels[c.Level]; !ok {
		errs = append(errs, fmt.Errorf("level: %q: want low, medium, high or critical", c.Level))
	}
	if c.Lateness < 0 || c.Suppress < 0 {
		errs = append(errs, errors.New("lateness, suppress: must not be negative"))
	}
	if c.MaxGroups < 1 || c.MaxDistinct < 1 {
		errs = append(errs, errors.New("max_groups, max_distinct: must be at least 1"))
	}
	if c.LeaseTTL < time.Second || c.SnapshotInterval <= 0 {
		errs = append(errs, errors.New("lease_ttl: at least 1s; snapshot_interval: positive"))
	}
	return errors.Join(errs...)
}

// aggKind is what an aggregate computes.
type aggKind uint8

const (
	aggCount aggKind = iota
	aggDistinct
	aggSum
	aggAvg
	aggMin
	aggMax
	aggQuantile
)

var aggKinds = map[string]aggKind{"count": aggCount, "distinct": aggDistinct, "sum": aggSum, "avg": aggAvg,
	"min": aggMin, "max": aggMax, "p50": aggQuantile, "p95": aggQuantile, "p99": aggQuantile}

var quantiles = map[string]float64{"p50": 0.50, "p95": 0.95, "p99": 0.99}

// aggregate is one named aggregate of a rule.
type aggregate struct {
	name  string
	kind  aggKind
	field string
	q     float64 // aggQuantile
	// slot is the index of the field among the rule's numeric or distinct fields.
	slot int
}

// aggregates parses the aggregate map, sorted by name (a stable order for alerts
// and snapshots).
func (c *Config) aggregates() ([]aggregate, error) {
	spec := c.Aggregate
	if len(spec) == 0 {
		spec = map[string]string{"count": "count"}
	}
	names := make([]string, 0, len(spec))
	for n := range spec {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []aggregate
	var errs []error
	for _, n := range names {
		if !namePattern.MatchString(n) {
			errs = append(errs, fmt.Errorf("aggregate.%s: a name is letters, digits and '_', usable in the condition", n))
			continue
		}
		fn, field, hasField := strings.Cut(strings.TrimSpace(spec[n]), " ")
		field = strings.TrimSpace(field)
		kind, ok := aggKinds[fn]
		if !ok {
			// "p95: aws.elb.target_processing_time.sec": the name is the function.
			if k, nameIsFn := aggKinds[n]; nameIsFn && !hasField {
				kind, fn, field, ok = k, n, fn, true
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("aggregate.%s: %q: want count, or distinct|sum|avg|min|max|p50|p95|p99 followed by a field", n, spec[n]))
			continue
		}
		a := aggregate{name: n, kind: kind, field: field, q: quantiles[fn]}
		if kind == aggCount {
			if field != "" {
				errs = append(errs, fmt.Errorf("aggregate.%s: count takes no field", n))
			}
		} else if err := checkField("aggregate."+n, field); err != nil {
			errs = append(errs, err)
		}
		out = append(out, a)
	}
	return out, errors.Join(errs...)
}

// checkField reports a field path that cannot name an ECS field.
func checkField(opt, path string) error {
	if path == "" {
		return fmt.Errorf("%s: missing: name a field, like source.ip", opt)
	}
	if strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") || strings.ContainsAny(path, " \"\\") {
		return fmt.Errorf("%s: %q is not a field path (dotted names, like source.ip)", opt, path)
	}
	return nil
}

var _ config.NameChecker = (*Config)(nil)

// CheckName implements config.NameChecker: a rule's name is its rule.id, its
// aggregation subject and the name of its lease and state.
func (c *Config) CheckName(name string) error { return checkName(name) }

// checkName reports a rule name that cannot be a subject token, KV key or object
// name.
func checkName(name string) error {
	if name == "" {
		return errors.New("missing: a threshold rule needs a name (its rule.id, and the name of its aggregation state)")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%q: a threshold rule's name may hold letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

// compileCondition compiles the condition with the aggregate names as float64
// variables.
func compileCondition(src string, aggs []aggregate) (*condition, error) {
	env := map[string]any{}
	for _, a := range aggs {
		env[a.name] = 0.0
	}
	prog, err := expr.Compile(src, expr.Env(env), expr.AsBool())
	if err != nil {
		first, _, _ := strings.Cut(err.Error(), "\n")
		return nil, fmt.Errorf("%q: %s", src, first)
	}
	return &condition{prog: prog, env: env, vm: vm.VM{}}, nil
}

// fingerprint identifies what a rule's state means: a snapshot taken under another
// group_by, window or aggregate set is discarded at restore.
func (c *Config) fingerprint() string {
	aggs, _ := c.aggregates()
	var b strings.Builder
	b.WriteString(strings.Join(c.GroupBy, ","))
	b.WriteString("|" + c.WindowType + "|" + strconv.FormatInt(int64(c.Window), 10))
	for _, a := range aggs {
		b.WriteString("|" + a.name + "=" + strconv.Itoa(int(a.kind)) + ":" + a.field)
	}
	return b.String()
}

// configComponent is config.Component, named here to keep Type's signature short.
type configComponent = config.Component

func errConfigType(c config.Component) error {
	return fmt.Errorf("config of type %T, want *threshold.Config", c)
}
