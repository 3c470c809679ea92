package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadProcessors(t *testing.T) {
	t.Setenv("VIGIL_TEST_PROC_KEY", "s3cr3t-hmac-key-0123456789")
	cfg, err := Load("testdata/config_processors.yaml", testRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	ps := cfg.Processing.Processors
	if len(ps) != 3 {
		t.Fatalf("%d processors, want 3", len(ps))
	}
	want := []struct {
		name, cond, field, key string
	}{
		{"tag-debug", `event.dataset == "syslog" && log.syslog.severity.code >= 7`, "labels.env", "s3cr3t-hmac-key-0123456789"},
		{"", `field("@timestamp") != nil`, "labels.default", ""},
		{"", "", "inline", ""},
	}
	for i, w := range want {
		p := ps[i]
		fp, ok := p.Settings.(*fakeProcessor)
		if !ok {
			t.Fatalf("processors[%d].Settings = %T", i, p.Settings)
		}
		if p.Type != "fakeproc" || p.Name != w.name || p.If != w.cond || fp.Field != w.field || fp.Key != w.key {
			t.Errorf("processors[%d] = %+v %+v, want %+v", i, p, fp, w)
		}
	}
	if cfg.Processing.Workers != 2 {
		t.Errorf("processing.workers beside processors: %d", cfg.Processing.Workers)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	// The secret is redacted in a dump and the original kept.
	if r := Redacted(*ps[0].Settings.(*fakeProcessor)); r.Key != "<redacted>" || r.Field != "labels.env" {
		t.Errorf("redacted: %+v", r)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate of a loaded config: %v", err)
	}
}

func TestLoadProcessorsUnsetSecret(t *testing.T) {
	// VIGIL_TEST_PROC_KEY unset: the error names the variable and the processor.
	_, err := Load("testdata/config_processors.yaml", testRegistry{})
	want := "testdata/config_processors.yaml:9:7: processing.processors[0].key: environment variable VIGIL_TEST_PROC_KEY is not set (use ${VIGIL_TEST_PROC_KEY:-default} for a default)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestLoadProcessorsSubstitutionFromFile(t *testing.T) {
	t.Setenv("VIGIL_TEST_PROC_KEY", "${file:testdata/secret.txt}") // not expanded again
	t.Setenv("VIGIL_TEST_PROC_FIELD", "labels.from_env")
	cfg, err := Load("testdata/config_processors.yaml", testRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Processing.Processors[0].Settings.(*fakeProcessor).Key; k != "${file:testdata/secret.txt}" {
		t.Errorf("key expanded twice: %q", k)
	}
	if f := cfg.Processing.Processors[1].Settings.(*fakeProcessor).Field; f != "labels.from_env" {
		t.Errorf("field = %q", f)
	}
	data := `
processing:
  processors:
    - type: fakeproc
      field: x
      key: ${file:testdata/secret.txt}
sources: {apps: {type: fake}}
sinks: {out: {type: fakesink, inputs: ["*"]}}
`
	cfg, err = Parse([]byte(data), "inline.yaml", testRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Processing.Processors[0].Settings.(*fakeProcessor).Key; k != "s3cr3t-token" {
		t.Errorf("key from a file: %q", k)
	}
}

// TestLoadProcessorProblems pins the problems of broken processors lists, each
// with file:line:column, so a change in wording or position is a visible decision.
func TestLoadProcessorProblems(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"config_processors_problems.yaml", []string{
			`3:13: processing.processors[0].type: unknown processor type "nosuch"; known types: fakeproc`,
			`7:7: processing.processors[1]: unknown field "feild" (check the spelling; see docs/configuration.md)`,
			`17:7: processing.processors[5].name: "twice" is the name of an earlier processor; names must be unique`,
			`19:5: processing.processors[6].type: missing: every component needs a type`,
			`21:7: processing.processors[7]: must be a mapping with at least a type`,
			// The checks after decoding name each processor by its place in the file,
			// even after entries that could not be decoded.
			`9:7: processing.processors[2].if: expression "event.dataset ==": unexpected token EOF (1:16)`,
			`11:5: processing.processors[3].field: missing`,
			`23:7: processing.processors[8].if: expression "field(x) == 1": field() takes one constant string, the field's path: field("@timestamp")`,
		}},
		{"config_processors_not_list.yaml", []string{
			`3:9: processing.processors: must be a list of processors, each with a type`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			file := filepath.Join("testdata", tt.file)
			cfg, err := Load(file, testRegistry{})
			if err == nil {
				t.Fatalf("loaded: %+v", cfg)
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err %T %v, want Problems", err, err)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, file+":"+w)
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
			for _, p := range ps {
				if p.File != file || p.Line == 0 || p.Column == 0 {
					t.Errorf("problem without a position: %+v", p)
				}
			}
		})
	}
}

// Each problem alone, in a small inline config, at its position.
func TestParseProcessorProblems(t *testing.T) {
	const rest = "sources: {apps: {type: fake}}\nsinks: {out: {type: fakesink, inputs: [\"*\"]}}\n"
	tests := []struct {
		name, processing, want string
	}{
		{"unknown type", `
processing:
  processors:
    - type: redactt
`, `4:13: processing.processors[0].type: unknown processor type "redactt"; known types: fakeproc`},
		{"typo of a key", `
processing:
  processors:
    - type: fakeproc
      fiel: x
`, `5:7: processing.processors[0]: unknown field "fiel" (check the spelling; see docs/configuration.md)`},
		{"bad if", `
processing:
  processors:
    - type: fakeproc
      field: x
      if: 'event.dataset == "a" &&'
`, `6:7: processing.processors[0].if: expression "event.dataset == \"a\" &&": unexpected token EOF (1:23)`},
		{"if not a boolean", `
processing:
  processors:
    - type: fakeproc
      field: x
      if: 1 + 2
`, `6:7: processing.processors[0].if: expression "1 + 2": expected bool, but got int`},
		{"if not a string", `
processing:
  processors:
    - type: fakeproc
      field: x
      if: [a]
`, `6:11: processing.processors[0].if: wrong type: want a string`},
		{"validate error of the processor", `
processing:
  processors:
    - type: fakeproc
      name: x
`, `4:5: processing.processors[0].field: missing`},
		{"duplicate names", `
processing:
  processors:
    - {type: fakeproc, name: same, field: a}
    - {type: fakeproc, name: same, field: b}
`, `5:24: processing.processors[1].name: "same" is the name of an earlier processor; names must be unique`},
		{"flow list, unknown type", `
processing:
  processors: [{type: fakeproc, field: a}, {type: nope}]
`, `3:51: processing.processors[1].type: unknown processor type "nope"; known types: fakeproc`},
		{"a mapping, not a list", `
processing:
  processors: {type: fakeproc}
`, `3:15: processing.processors: must be a list of processors, each with a type`},
		{"a scalar, not a list", `
processing:
  processors: fakeproc
`, `3:15: processing.processors: must be a list of processors, each with a type`},
		{"type not a string", `
processing:
  processors:
    - type: [fakeproc]
`, `4:13: processing.processors[0].type: wrong type: want a string`},
		{"processing key typo beside processors", `
processing:
  processors: []
  workerz: 3
`, `4:3: processing: unknown field "workerz" (check the spelling; see docs/configuration.md)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.processing+rest), "p.yaml", testRegistry{})
			want := "p.yaml:" + tt.want
			if err == nil || err.Error() != want {
				t.Errorf("got:\n%v\nwant:\n%s", err, want)
			}
		})
	}
}

func TestParseNoProcessors(t *testing.T) {
	for _, processing := range []string{"", "processing:\n  processors:\n", "processing:\n  processors: []\n", "processing: {workers: 3}\n"} {
		cfg, err := Parse([]byte(processing+"sources: {apps: {type: fake}}\nsinks: {out: {type: fakesink, inputs: [\"*\"]}}\n"), "p.yaml", testRegistry{})
		if err != nil {
			t.Errorf("%q: %v", processing, err)
			continue
		}
		if len(cfg.Processing.Processors) != 0 {
			t.Errorf("%q: %d processors", processing, len(cfg.Processing.Processors))
		}
	}
}

func TestProcessingValidateDeprecated(t *testing.T) {
	cfg, err := Load("testdata/config_processors_validate.yaml", testRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Processing.Validate.Enabled || cfg.Processing.Validate.Datasets["app.logs"] != "base" {
		t.Errorf("processing.validate: %+v", cfg.Processing.Validate)
	}
	if len(cfg.Processing.Processors) != 1 {
		t.Errorf("processors: %d", len(cfg.Processing.Processors))
	}
	want := "testdata/config_processors_validate.yaml:5:3: processing.validate: deprecated: write it as a processor, `processing.processors: [{type: validate, datasets: …}]`; it runs after the configured processors"
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].String() != want {
		t.Errorf("warnings:\n%v\nwant:\n%s", cfg.Warnings, want)
	}
}

// FuzzProcessorConfig feeds arbitrary YAML as the processors list: Parse must never
// panic, must return either a config or problems, and a config it returns must hold
// only processors it can build.
func FuzzProcessorConfig(f *testing.F) {
	for _, seed := range []string{
		"\n    - type: fakeproc\n      field: x\n",
		"\n    - type: fakeproc\n      name: a\n      if: event.dataset == \"syslog\" && log.syslog.severity.code >= 7\n      field: x\n      key: ${VIGIL_FUZZ_UNSET:-default-key}\n",
		" [{type: fakeproc, field: a, if: 'event.dataset startsWith \"aws.\"'}, {type: fakeproc, field: b}]",
		"\n    - type: fakeproc\n      feild: x\n",
		"\n    - type: nosuch\n    - name: x\n    - just a string\n    - {type: fakeproc, if: 'field(x)'}\n",
		" {type: fakeproc}",
		" fakeproc",
		" []",
		"\n    - &a {type: fakeproc, field: x}\n    - *a\n",
		"\n    - type: fakeproc\n      field: ${file:/no/such/file}\n",
		"\n    - type: fakeproc\n      field: x\n      key: [1, 2]\n      if: [a]\n",
		"\n    - !!map {type: fakeproc, field: x}\n    - ? type\n      : fakeproc\n",
	} {
		f.Add(seed)
	}
	const rest = "\nsources: {apps: {type: fake}}\nsinks: {out: {type: fakesink, inputs: [\"*\"]}}\n"
	f.Fuzz(func(t *testing.T, processors string) {
		if len(processors) > 4096 {
			return
		}
		doc := "processing:\n  processors:" + processors + rest
		cfg, err := Parse([]byte(doc), "fuzz.yaml", testRegistry{})
		if err != nil {
			if cfg != nil {
				t.Fatalf("both a config and an error: %v", err)
			}
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %T %v, want Problems", err, err)
			}
			_ = err.Error()
			return
		}
		if cfg == nil {
			t.Fatal("neither a config nor an error")
		}
		for i, p := range cfg.Processing.Processors {
			if p.Type != "fakeproc" {
				t.Fatalf("processors[%d] of unknown type %q loaded", i, p.Type)
			}
			if _, ok := p.Settings.(*fakeProcessor); !ok {
				t.Fatalf("processors[%d] without settings: %+v", i, p)
			}
			if err := p.Settings.Validate(); err != nil {
				t.Fatalf("processors[%d] loaded but invalid: %v", i, err)
			}
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("a loaded config fails Validate: %v", err)
		}
	})
}
