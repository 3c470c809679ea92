package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// parserDatasets maps each parser package to the dataset of its events, for the
// golden events that do not carry event.dataset themselves.
var parserDatasets = map[string]string{
	"albparse":        "aws.elb_logs",
	"cloudfrontparse": "aws.cloudfront_logs",
	"vpcflowparse":    "aws.vpcflow",
	"cloudtrailparse": "aws.cloudtrail",
	"cloudwatchparse": "aws.cloudwatch_logs",
	"apacheparse":     "apache.access",
	"nginxparse":      "nginx.access",
	"syslogparse":     "syslog",
	"jsonparse":       "app", // no shipped schema: the base one only
}

type goldenEvent struct {
	name    string // file#index, for messages
	dataset string
	doc     map[string]any
}

// goldenEvents reads every event of the parsers' golden files, completed with the
// fields the pipeline adds (process.Normalizer): they are what validation sees.
func goldenEvents(t testing.TB) []goldenEvent {
	t.Helper()
	var files []string
	for _, glob := range []string{"../../parse/*/testdata/*/want.json", "../../parse/*/testdata/inner/*/want.json"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 40 {
		t.Fatalf("found %d golden files; has internal/parse moved?", len(files))
	}
	var out []goldenEvent
	for _, f := range files {
		// ../../parse/<package>/testdata/...
		pkg := strings.Split(filepath.ToSlash(f), "/")[3]
		def, ok := parserDatasets[pkg]
		if !ok {
			t.Fatalf("%s: no dataset known for parser package %s; add it to parserDatasets", f, pkg)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Events []map[string]any `json:"events"`
		}
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, e := range want.Events {
			ds := def
			if ev, ok := e["event"].(map[string]any); ok {
				if d, ok := ev["dataset"].(string); ok {
					ds = d
				}
			}
			addPipelineFields(e, ds, fmt.Sprintf("id-%d", i))
			out = append(out, goldenEvent{name: fmt.Sprintf("%s#%d", f, i), dataset: ds, doc: e})
		}
	}
	return out
}

// addPipelineFields adds what process.Normalizer adds to every event, keeping what the
// parser set (its @timestamp and event.id win, as in the pipeline).
func addPipelineFields(e map[string]any, dataset, id string) {
	if _, ok := e["@timestamp"]; !ok {
		e["@timestamp"] = "2024-05-01T12:00:00.123456789Z"
	}
	ev, _ := e["event"].(map[string]any)
	if ev == nil {
		ev = map[string]any{}
		e["event"] = ev
	}
	if _, ok := ev["id"]; !ok {
		ev["id"] = id
	}
	ev["dataset"] = dataset
	ev["ingested"] = "2024-05-01T12:00:01Z"
	agent, _ := e["agent"].(map[string]any)
	if agent == nil {
		agent = map[string]any{}
		e["agent"] = agent
	}
	agent["type"] = "vigil"
	e["ecs"] = map[string]any{"version": "8.17.0"}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newValidator(t testing.TB, cfg *Config) *Validator {
	t.Helper()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestGoldenEventsPass(t *testing.T) {
	v := newValidator(t, NewConfig())
	events := goldenEvents(t)
	seen := map[string]int{}
	for _, g := range events {
		if err := v.Check(g.dataset, mustJSON(t, g.doc)); err != nil {
			t.Errorf("%s: %v", g.name, err)
		}
		seen[g.dataset]++
	}
	// Every shipped schema must have been exercised by real parser output.
	for _, ds := range Datasets() {
		if seen[ds] == 0 {
			t.Errorf("no golden event of dataset %s", ds)
		}
	}
	t.Logf("%d golden events: %v", len(events), seen)
}

func TestGoldenEventsPassRequireSchema(t *testing.T) {
	cfg := NewConfig()
	cfg.RequireSchema = true
	cfg.Datasets = map[string]string{"app": BaseOnly, "x": BaseOnly}
	v := newValidator(t, cfg)
	for _, g := range goldenEvents(t) {
		if err := v.Check(g.dataset, mustJSON(t, g.doc)); err != nil {
			t.Errorf("%s: %v", g.name, err)
		}
	}
}

// albEvent returns a realistic ALB event as the pipeline emits it.
func albEvent(t testing.TB) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../parse/albparse/testdata/alb_types/want.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	e := want.Events[1]
	addPipelineFields(e, "aws.elb_logs", "TOVX04K40DtZ2Dospm7U")
	return e
}

// setPath sets (or, with del, deletes) the value at a dotted path, making objects on
// the way.
func setPath(m map[string]any, dotted string, v any, del bool) {
	keys := strings.Split(dotted, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	if del {
		delete(m, keys[len(keys)-1])
		return
	}
	m[keys[len(keys)-1]] = v
}

func TestBadEvents(t *testing.T) {
	tests := []struct {
		name    string
		dataset string
		path    string
		value   any
		del     bool
		want    string // in the error
		keyword string
	}{
		{name: "port as string", path: "source.port", value: "2817", want: "/source/port: got string, want integer", keyword: "type"},
		{name: "port out of range", path: "source.port", value: 70000, want: "/source/port: ", keyword: "maximum"},
		{name: "destination port as string", path: "destination.port", value: "443", want: "/destination/port: got string, want integer", keyword: "type"},
		{name: "status code as string", path: "http.response.status_code", value: "200", want: "/http/response/status_code: got string, want integer", keyword: "type"},
		{name: "request bytes as string", path: "http.request.bytes", value: "34", want: "/http/request/bytes: got string, want integer", keyword: "type"},
		{name: "negative body bytes", path: "http.request.body.bytes", value: -1, want: "/http/request/body/bytes: ", keyword: "minimum"},
		{name: "timestamp not RFC 3339", path: "@timestamp", value: "02/Jul/2018:22:23:00 +0000", want: "/@timestamp: ", keyword: "format"},
		{name: "timestamp as number", path: "@timestamp", value: 1530570180, want: "/@timestamp: got number, want string", keyword: "type"},
		{name: "event.ingested not a date", path: "event.ingested", value: "yesterday", want: "/event/ingested: ", keyword: "format"},
		{name: "missing event.id", path: "event.id", del: true, want: "/event: missing property 'id'", keyword: "required"},
		{name: "event.id as number", path: "event.id", value: 7, want: "/event/id: got number, want string", keyword: "type"},
		{name: "empty event.dataset", path: "event.dataset", value: "", want: "/event/dataset: ", keyword: "minLength"},
		{name: "missing ecs.version", path: "ecs.version", del: true, want: "/ecs: missing property 'version'", keyword: "required"},
		{name: "missing @timestamp", path: "@timestamp", del: true, want: "(document): missing property '@timestamp'", keyword: "required"},
		{name: "source ip not an ip", path: "source.ip", value: "192.168.131", want: "/source/ip: '192.168.131' is not valid ipv4", keyword: "anyOf"},
		{name: "source ip as hostname", path: "source.ip", value: "lb.example.com", want: "/source/ip: ", keyword: "anyOf"},
		{name: "related.ip not an array", path: "related.ip", value: "10.0.0.1", want: "/related/ip: got string, want array", keyword: "type"},
		{name: "related.ip element not an ip", path: "related.ip", value: []any{"10.0.0.1", "nope"}, want: "/related/ip/1: ", keyword: "anyOf"},
		{name: "unknown event.category", path: "event.category", value: []any{"web", "webb"}, want: "/event/category/1: value must be one of", keyword: "enum"},
		{name: "unknown event.kind", path: "event.kind", value: "log", want: "/event/kind: value must be one of", keyword: "enum"},
		{name: "source not an object", path: "source", value: "10.0.0.1", want: "/source: got string, want object", keyword: "type"},
		{name: "wrong dataset in document", path: "event.dataset", value: "aws.vpcflow", want: "/event/dataset: value must be 'aws.elb_logs'", keyword: "const"},
		{name: "elb without aws.elb", path: "aws.elb", del: true, want: "/aws: missing property 'elb'", keyword: "required"},
		{name: "elb processing time as string", path: "aws.elb.request_processing_time.sec", value: "0.086", want: "/aws/elb/request_processing_time/sec: got string, want number", keyword: "type"},
		{name: "not aws", path: "cloud.provider", value: "gcp", want: "/cloud/provider: value must be 'aws'", keyword: "const"},
		{name: "base only: port as string", dataset: "app", path: "source.port", value: "22", want: "/source/port: got string, want integer", keyword: "type"},
		{name: "base only: ip array on a single ip field", dataset: "app", path: "destination.ip", value: []any{"10.0.0.1"}, want: "/destination/ip: got array, want string", keyword: "type"},
		{name: "syslog severity out of range", dataset: "syslog", path: "log.syslog.severity.code", value: 9, want: "/log/syslog/severity/code: ", keyword: "maximum"},
	}
	v := newValidator(t, NewConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := albEvent(t)
			ds := tt.dataset
			if ds == "" {
				ds = "aws.elb_logs"
			} else {
				setPath(e, "event.dataset", ds, false)
				if ds == "syslog" {
					setPath(e, "log.syslog.priority", 13, false)
				}
			}
			setPath(e, tt.path, tt.value, tt.del)
			err := v.Check(ds, mustJSON(t, e))
			if err == nil {
				t.Fatal("passed; want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\n does not contain %q", err, tt.want)
			}
			var verr *Error
			if !errors.As(err, &verr) {
				t.Fatalf("error is a %T, want *Error", err)
			}
			found := false
			for _, vi := range verr.Violations {
				if vi.Keyword == tt.keyword && strings.HasPrefix(tt.want, vi.Pointer) {
					found = true
				}
			}
			if !found {
				t.Errorf("no violation with keyword %q: %+v", tt.keyword, verr.Violations)
			}
		})
	}
}

func TestErrorMessageShape(t *testing.T) {
	v := newValidator(t, NewConfig())
	e := albEvent(t)
	setPath(e, "source.port", "2817", false)
	err := v.Check("aws.elb_logs", mustJSON(t, e))
	want := "dataset aws.elb_logs: schema aws.elb_logs: /source/port: got string, want integer (type)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestManyViolationsAreBounded(t *testing.T) {
	v := newValidator(t, NewConfig())
	e := albEvent(t)
	for _, p := range []string{"source.port", "url.port", "http.response.status_code", "http.request.body.bytes", "http.response.body.bytes", "aws.elb.backend_processing_time.sec", "aws.elb.request_processing_time.sec"} {
		setPath(e, p, "x", false)
	}
	err := v.Check("aws.elb_logs", mustJSON(t, e))
	var verr *Error
	if !errors.As(err, &verr) {
		t.Fatalf("got %v", err)
	}
	if len(verr.Violations) != maxViolations+1 || !strings.Contains(err.Error(), "and 2 more") {
		t.Errorf("got %d violations: %v", len(verr.Violations), err)
	}
	// The same document always gets the same reason (the library walks maps).
	for range 5 {
		if again := v.Check("aws.elb_logs", mustJSON(t, e)); again.Error() != err.Error() {
			t.Fatalf("reason changed:\n%v\n%v", err, again)
		}
	}
}

// A null optional field is absent (as Elasticsearch takes it); a null core field is not.
func TestNulls(t *testing.T) {
	v := newValidator(t, NewConfig())
	for _, p := range []string{"error", "source.port", "user_agent", "related.ip", "event.kind", "event.category", "url.port"} {
		e := albEvent(t)
		setPath(e, p, nil, false)
		if err := v.Check("app", mustJSON(t, e)); err != nil {
			t.Errorf("null %s: %v", p, err)
		}
	}
	for _, tt := range []struct{ path, want string }{
		{"@timestamp", "/@timestamp: got null, want string (type)"},
		{"event.id", "/event/id: got null, want string (type)"},
		{"event.dataset", "/event/dataset: got null, want string (type)"},
		{"ecs.version", "/ecs/version: got null, want string (type)"},
		{"event", "/event: got null, want object (type)"},
	} {
		e := albEvent(t)
		setPath(e, tt.path, nil, false)
		if err := v.Check("app", mustJSON(t, e)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("null %s: got %v, want %q", tt.path, err, tt.want)
		}
	}
}

func TestNotJSON(t *testing.T) {
	v := newValidator(t, NewConfig())
	for _, doc := range []string{"", "{", `{"a":1} {"b":2}`, "\xff"} {
		if err := v.Check("app", []byte(doc)); err == nil || !strings.Contains(err.Error(), "not a JSON document") {
			t.Errorf("%q: got %v", doc, err)
		}
	}
	if err := v.Check("app", []byte(`[1,2]`)); err == nil || !strings.Contains(err.Error(), "got array, want object") {
		t.Errorf("array document: got %v", err)
	}
}

// myappEvent is an event of an operator's dataset that meets testdata/myapp.schema.json.
func myappEvent(t testing.TB, dataset string) map[string]any {
	t.Helper()
	e := map[string]any{
		"message": "login ok",
		"user":    map[string]any{"name": "alice"},
		"myapp":   map[string]any{"tenant": "t-42", "retries": 0, "peer": "2001:db8::1"},
	}
	addPipelineFields(e, dataset, "id-1")
	return e
}

func TestUserSchema(t *testing.T) {
	cfg := NewConfig()
	cfg.Datasets = map[string]string{"myapp.*": "testdata/myapp.schema.json"}
	v := newValidator(t, cfg)

	if err := v.Check("myapp.auth", mustJSON(t, myappEvent(t, "myapp.auth"))); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	tests := []struct {
		name, path string
		value      any
		del        bool
		want       string
	}{
		{name: "pattern", path: "myapp.tenant", value: "42", want: "schema testdata/myapp.schema.json: /myapp/tenant: '42' does not match pattern"},
		{name: "type", path: "myapp.retries", value: "3", want: "/myapp/retries: got string, want integer (type)"},
		{name: "required", path: "user.name", del: true, want: "/user: missing property 'name' (required)"},
		{name: "ref to the base ip", path: "myapp.peer", value: "host-1", want: "/myapp/peer: 'host-1' is not valid ipv4"},
		// The base schema still applies, and is checked first.
		{name: "base", path: "event.id", del: true, want: "schema ecs-base: /event: missing property 'id' (required)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := myappEvent(t, "myapp.auth")
			setPath(e, tt.path, tt.value, tt.del)
			err := v.Check("myapp.auth", mustJSON(t, e))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
	// Other datasets keep their shipped schemas.
	e := albEvent(t)
	setPath(e, "aws.elb", nil, true)
	if err := v.Check("aws.elb_logs", mustJSON(t, e)); err == nil {
		t.Error("aws.elb_logs no longer checked against its shipped schema")
	}
}

func TestDatasetRouting(t *testing.T) {
	cfg := NewConfig()
	cfg.Datasets = map[string]string{
		"aws.*":        "testdata/myapp.schema.json", // an operator's schema for every aws dataset…
		"aws.vpcflow":  Builtin,                      // …but the exact key wins
		"aws.cloud*":   BaseOnly,                     // and the longer glob wins over aws.*
		"myapp.strict": "testdata/myapp.schema.json",
	}
	cfg.RequireSchema = true
	v := newValidator(t, cfg)
	tests := []struct {
		dataset string
		want    []string // schema names, in order; nil: missing
	}{
		{"aws.elb_logs", []string{"ecs-base", "testdata/myapp.schema.json"}},
		{"aws.vpcflow", []string{"aws.vpcflow"}},
		{"aws.cloudtrail", []string{"ecs-base"}},
		{"syslog", []string{"syslog"}},
		{"myapp.strict", []string{"ecs-base", "testdata/myapp.schema.json"}},
		{"unknown", nil},
	}
	for _, tt := range tests {
		p := v.plan(tt.dataset)
		var got []string
		for _, s := range p.schemas {
			got = append(got, s.name)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || p.missing != (tt.want == nil) {
			t.Errorf("%s: got %v (missing %v), want %v", tt.dataset, got, p.missing, tt.want)
		}
	}
	err := v.Check("unknown", []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "require_schema") {
		t.Errorf("unknown dataset with require_schema: got %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	v := newValidator(t, NewConfig())
	doc := mustJSON(t, myappEvent(t, "x"))
	for i := range maxCached + 10 {
		if err := v.Check(fmt.Sprintf("ds%d", i), doc); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	v.cache.Range(func(any, any) bool { n++; return true })
	if n != maxCached {
		t.Errorf("cache holds %d datasets, want %d", n, maxCached)
	}
}

func TestConcurrentChecks(t *testing.T) {
	v := newValidator(t, NewConfig())
	good := mustJSON(t, albEvent(t))
	e := albEvent(t)
	setPath(e, "source.port", "x", false)
	bad := mustJSON(t, e)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				ds := "aws.elb_logs"
				if i%3 == 0 {
					ds = fmt.Sprintf("other%d", (w+i)%17)
				}
				if err := v.Check(ds, good); err != nil && ds == "aws.elb_logs" {
					errs <- err
					return
				}
				if err := v.Check("aws.elb_logs", bad); err == nil {
					errs <- errors.New("bad event passed")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		datasets map[string]string
		want     string // "" for valid
	}{
		{name: "defaults"},
		{name: "builtin exact", datasets: map[string]string{"aws.cloudtrail": Builtin}},
		{name: "builtin glob", datasets: map[string]string{"aws.*": Builtin}},
		{name: "base", datasets: map[string]string{"*": BaseOnly}},
		{name: "file", datasets: map[string]string{"myapp": "testdata/myapp.schema.json"}},
		{name: "builtin matching nothing", datasets: map[string]string{"aws.elb": Builtin}, want: `datasets: "aws.elb": builtin, but Vigil ships no schema for a dataset it matches (shipped: apache.access, aws.cloudfront_logs`},
		{name: "bad glob", datasets: map[string]string{"aws.[": BaseOnly}, want: `datasets: "aws.[": bad glob: syntax error in pattern`},
		{name: "bad character", datasets: map[string]string{"aws/elb": BaseOnly}, want: `datasets: "aws/elb": character '/' cannot be in a dataset`},
		{name: "empty pattern", datasets: map[string]string{"": BaseOnly}, want: `datasets: "": empty dataset pattern`},
		{name: "empty value", datasets: map[string]string{"x": ""}, want: `datasets: "x": empty; want builtin, base or the path of a JSON Schema file`},
		{name: "missing file", datasets: map[string]string{"x": filepath.Join(dir, "nope.json")}, want: `datasets: "x": schema file: stat ` + filepath.Join(dir, "nope.json") + `: no such file or directory`},
		{name: "directory", datasets: map[string]string{"x": dir}, want: `datasets: "x": schema file ` + dir + ` is a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := NewConfig()
			cfg.Datasets = tt.datasets
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v\nwant it to contain %q", err, tt.want)
			}
			// New refuses what Validate refuses.
			if _, err := New(cfg); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

func TestConfigValidateJoinsErrors(t *testing.T) {
	cfg := NewConfig()
	cfg.Datasets = map[string]string{"a/b": BaseOnly, "nothing*": Builtin}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `"a/b"`) || !strings.Contains(err.Error(), `"nothing*"`) {
		t.Errorf("got %v", err)
	}
}

func TestNewSchemaFileErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/syntax_error.schema.json", []string{`datasets: "x": schema file testdata/syntax_error.schema.json: line 4 column 31: not valid JSON`}},
		{"testdata/bad_keyword.schema.json", []string{`datasets: "x": schema file testdata/bad_keyword.schema.json: not a valid JSON Schema: /properties/myapp/properties/retries/type: `}},
		// Nothing is fetched from the network, ever.
		{"testdata/remote_ref.schema.json", []string{`datasets: "x": schema file testdata/remote_ref.schema.json: `, "https://example.com/schemas/thing.json"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			cfg := NewConfig()
			cfg.Datasets = map[string]string{"x": tt.file}
			_, err := New(cfg)
			if err == nil {
				t.Fatal("New accepted the schema")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestSameFileForTwoPatterns(t *testing.T) {
	cfg := NewConfig()
	cfg.Datasets = map[string]string{"a*": "testdata/myapp.schema.json", "b*": "testdata/myapp.schema.json"}
	v := newValidator(t, cfg)
	for _, ds := range []string{"a1", "b1"} {
		if err := v.Check(ds, mustJSON(t, myappEvent(t, ds))); err != nil {
			t.Errorf("%s: %v", ds, err)
		}
	}
}

func TestShippedSchemas(t *testing.T) {
	want := []string{"apache.access", "aws.cloudfront_logs", "aws.cloudtrail", "aws.cloudwatch_logs", "aws.elb_logs", "aws.vpcflow", "nginx.access", "syslog"}
	if got := Datasets(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Each shipped schema's $id is where a user schema can $ref it.
	for _, n := range append(want, baseName) {
		data, err := schemaFS.ReadFile("schemas/" + n + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(data, &s); err != nil || s.ID != SchemaBaseURL+n+".json" {
			t.Errorf("%s: $id %q (%v)", n, s.ID, err)
		}
	}
}
