package cli

import (
	"bytes"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "vigil ") {
		t.Fatalf("%d %q", code, out)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		wantCode int
		wantOut  string   // substring of stdout
		wantErr  []string // substrings of stderr, each must appear
	}{
		{name: "valid", file: "testdata/valid.yaml", wantCode: 0,
			wantOut: "testdata/valid.yaml: valid (1 sources, 0 processors, 1 sinks, buffer embedded, role all)"},
		{name: "typo", file: "testdata/typo.yaml", wantCode: 1,
			wantErr: []string{"testdata/typo.yaml:4:5: sources.apps: unknown field \"adress\"", "1 problem"}},
		{name: "wrong types and references", file: "testdata/bad_types.yaml", wantCode: 1,
			wantErr: []string{
				"testdata/bad_types.yaml:2:",
				"processing",
				"testdata/bad_types.yaml:5:11: sources.apps.type: unknown source type \"htp\"; known types:",
				"sinks.archive.inputs: missing",
			}},
		{name: "exposed listeners", file: "testdata/exposed.yaml", wantCode: 1,
			wantErr: []string{
				"testdata/exposed.yaml:4:3: buffer.listen: 0.0.0.0:4222 is reachable from other machines but has neither credentials",
				"testdata/exposed.yaml:6:3: admin.address: 0.0.0.0:8686 is reachable from other machines but admin.token is not set",
				"2 problems",
			}},
		{name: "no such file", file: "testdata/missing.yaml", wantCode: 1, wantErr: []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", "validate", "-c", tt.file)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout %q does not contain %q", out, tt.wantOut)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, errOut)
				}
			}
			if strings.Contains(errOut, "dev-token") || strings.Contains(out, "dev-token") {
				t.Error("a secret was printed")
			}
		})
	}
}

func TestParseCommand(t *testing.T) {
	input := `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08"
not an access log line
`
	code, out, errOut := runCLI(t, input, "parse", "--format", "apache", "--dataset", "web.access")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one bad record)", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want 1 document, got %d: %s", len(lines), out)
	}
	for _, want := range []string{`"@timestamp":"2000-10-10T20:55:36Z"`, `"dataset":"web.access"`, `"status_code":200`, `"name":"frank"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("document lacks %s: %s", want, lines[0])
		}
	}
	if !strings.HasPrefix(errOut, "<stdin>:2: ") {
		t.Errorf("stderr should name the line: %q", errOut)
	}

	code, _, errOut = runCLI(t, "", "parse", "--format", "nope")
	if code != 2 || !strings.Contains(errOut, "unknown format") {
		t.Errorf("unknown format: %d %q", code, errOut)
	}
}

func TestEmbeddedDefaultIsValid(t *testing.T) {
	code, _, errOut := runCLI(t, "", "run", "--log-level", "loud")
	if code != 2 || !strings.Contains(errOut, "--log-level") {
		t.Errorf("bad log level: %d %q", code, errOut)
	}
}
