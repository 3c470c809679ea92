package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml/ast"
)

func TestLoadFull(t *testing.T) {
	cfg, err := Load("testdata/config_full.yaml", testRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != "testdata/config_full.yaml" || cfg.DataDir != "/var/lib/vigil" || cfg.Role != RoleAll {
		t.Errorf("top level: %+v", cfg)
	}
	if cfg.ShutdownTimeout != 45*time.Second {
		t.Errorf("shutdown_timeout = %v", cfg.ShutdownTimeout)
	}
	if cfg.Limits.Memory != 1<<30 || cfg.Limits.Share(16) != 64<<20 {
		t.Errorf("limits: %+v, share %d", cfg.Limits, cfg.Limits.Share(16))
	}
	b := cfg.Buffer
	if b.Type != "embedded" || b.Sync != "interval" || b.SyncInterval != time.Minute || b.Listen != "127.0.0.1:4222" {
		t.Errorf("buffer: %+v", b)
	}
	if b.Intake.MaxBytes != 2<<30 || b.Events.MaxBytes != 512<<20 || b.DLQ.MaxBytes != 100e6 {
		t.Errorf("sizes: %d %d %d", b.Intake.MaxBytes, b.Events.MaxBytes, b.DLQ.MaxBytes)
	}
	if b.Intake.MaxAge != 24*time.Hour || b.DuplicateWindow != 5*time.Minute || b.AckWait != 30*time.Second {
		t.Errorf("durations: %+v", b)
	}
	if b.Replicas != 1 {
		t.Errorf("default replicas lost: %d", b.Replicas)
	}
	if cfg.Admin.Address != "127.0.0.1:9686" || cfg.Processing.Workers != 4 || cfg.Processing.Fetch != 128 {
		t.Errorf("admin %+v processing %+v", cfg.Admin, cfg.Processing)
	}
	if len(cfg.Sources) != 2 || cfg.Sources[0].Name != "apps" || cfg.Sources[1].Name != "syslog" {
		t.Fatalf("sources in file order: %+v", cfg.Sources)
	}
	apps := cfg.Sources[0]
	if apps.Type != "fake" || apps.Format != "json" || apps.Dataset != "app.logs" || apps.KeepOriginal {
		t.Errorf("apps: %+v", apps)
	}
	if fo := apps.FormatOptions.(*fakeFormat); fo.Field != "time" {
		t.Errorf("format_options: %+v", fo)
	}
	fs := apps.Settings.(*fakeSource)
	if fs.Address != "0.0.0.0:8080" || len(fs.Tokens) != 2 || fs.Limit != 10<<20 || fs.Workers != 3 ||
		fs.Labels["team"] != "sec" || fs.Auth.Password != "hunter2" {
		t.Errorf("apps settings: %+v", fs)
	}
	syslog, ok := cfg.Source("syslog")
	if !ok || !syslog.KeepOriginal || syslog.Format != "lines" {
		t.Errorf("syslog: %+v (keep_original defaults to true)", syslog)
	}
	// Defaults of the component survive when the file does not set them.
	if s := syslog.Settings.(*fakeSource); s.Address != "127.0.0.1:9000" || s.Workers != 1 {
		t.Errorf("component defaults: %+v", s)
	}
	if _, ok := cfg.Source("nope"); ok {
		t.Error("Source(nope) found")
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].Settings.(*fakeSink).Level != 6 || strings.Join(cfg.Sinks[0].Inputs, ",") != "app.*,syslog" {
		t.Errorf("sinks: %+v", cfg.Sinks[0])
	}
	if !cfg.RunsSources() || !cfg.RunsProcessing() || !cfg.RunsSinks() {
		t.Error("role all runs everything")
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate of a loaded config: %v", err)
	}
}

// TestLoadProblems pins the exact problems, with file:line:column and field path, of
// each broken config, so that a change in wording or position is a visible decision.
func TestLoadProblems(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"config_typo.yaml", []string{
			`3:3: processing: unknown field "fetchh" (check the spelling; see docs/configuration.md)`,
			`7:5: sources.apps: unknown field "adress" (check the spelling; see docs/configuration.md)`,
		}},
		{"config_typo_top.yaml", []string{
			`2:1: sorces: unknown setting; the top level takes data_dir, role, node_name, buffer, admin, processing, limits, shutdown_timeout, sources, sinks`,
		}},
		{"config_wrong_type.yaml", []string{
			`2:12: processing: wrong type: want an integer`,
			// 5:9 is the mapping, not the value at 6:12: see TestBuiltinProblems.
			`5:9: sources.apps: want a size such as 512KiB, 10MiB or 2GiB, got "[1]"`,
			`9:14: sources.web: wrong type: want an integer`,
		}},
		{"config_unknown_type.yaml", []string{
			`3:11: sources.apps.type: unknown source type "kafka"; known types: fake`,
			`4:3: sources.web.type: missing: every component needs a type`,
			`8:11: sinks.out.type: unknown sink type "s3"; known types: fakesink`,
		}},
		{"config_unknown_format.yaml", []string{
			`4:5: sources.apps.format: unknown format "yaml"; known formats: json, lines`,
			`9:7: sources.web.format_options: unknown field "feild" (check the spelling; see docs/configuration.md)`,
			// Reported in the same run: the checks go on after decoding problems.
			`14:7: sources.api.format_options.field: must not be empty`,
		}},
		{"config_sink_no_inputs.yaml", []string{
			`5:3: sinks.out.inputs: missing: name the datasets this sink takes, like ["*"] or ["aws.*"]`,
			`9:5: sinks.bad.inputs[0]: bad glob "["`,
			`9:5: sinks.bad.inputs[1]: bad glob ""`,
		}},
		{"config_sink_unmatched.yaml", []string{
			`14:5: sinks.aws.inputs: matches no dataset of any source (app.logs, firewall)`,
		}},
		{"config_duplicate.yaml", []string{
			`4:3: mapping key "apps" already defined at [2:3]`,
		}},
		{"config_structure.yaml", []string{
			`2:3: sources.bad name: a name may hold letters, digits, '_' and '-' only (it becomes a stream subject)`,
			`4:3: sources.notype.type: missing: every component needs a type`,
			`6:11: sources.scalar: must be a mapping with at least a type`,
		}},
		{"config_invalid_values.yaml", []string{
			`1:1: role: want all, ingest or process, got "everything"`,
			`2:1: buffer.urls: type nats needs at least one server URL, like nats://127.0.0.1:4222`,
			`4:3: buffer.replicas: want 1 to 5, got 7`,
			`5:3: buffer.listen: only for the embedded buffer`,
			`6:3: buffer.sync: want always (fsync before acknowledging; survives power loss) or interval (survives a process crash only), got "sometimes"`,
			`7:12: buffer.intake.max_age: must be positive`,
			`7:25: buffer.intake.max_bytes: must be at least 1MiB`,
			`2:1: buffer.duplicate_window: must be positive and no longer than buffer.intake.max_age`,
			`8:3: buffer.ack_wait: must be at least 1s`,
			`10:3: processing.workers: want 1 to 256, got 0`,
			`11:3: processing.fetch: want 1 to 4096, got 5000`,
			`12:1: shutdown_timeout: must be positive`,
			`17:5: sources.apps.address: want host:port, got "nowhere"`,
			`18:5: sources.apps.workers: must be at least 1`,
			`16:5: sources.apps.dataset: a dataset may hold letters, digits, '_', '-' and '.' only, got "bad..dataset"`,
			`23:5: sinks.out.level: want 0 to 9, got 12`,
		}},
		{"config_unset_var.yaml", []string{
			`7:5: sources.apps.address: unclosed ${ … }`,
			`4:5: sources.apps.tokens: environment variable VIGIL_TEST_UNSET_TOKEN is not set (use ${VIGIL_TEST_UNSET_TOKEN:-default} for a default)`,
			`6:7: sources.apps.auth.password: ${file:testdata/no-such-file}: cannot read the secret file: no such file or directory`,
			`12:5: sinks.out.path: empty ${}`,
		}},
		{"config_exposed.yaml", []string{
			`3:3: buffer.listen_auth.password: missing: user needs a password`,
			// The seed is a secret: the problem names it without echoing it.
			"5:5: buffer.listen_auth.nkey: this is an nkey seed, the secret half: give the public key (U…, `nk -inkey FILE -pubout`) and keep the seed with the client",
			`6:3: buffer.listen_tls: set both cert_file and key_file`,
			`2:3: buffer.listen: 0.0.0.0:4222 is reachable from other machines but has no TLS (buffer.listen_tls): credentials and events would cross the network in clear text; set cert_file and key_file, or listen on 127.0.0.1`,
			`9:3: admin.address: 0.0.0.0:8686 is reachable from other machines but admin.token is not set: anyone who reaches it could read dead letters (raw evidence), replay them and scrape /metrics; set admin.token (such as ${VIGIL_ADMIN_TOKEN}), or listen on 127.0.0.1`,
		}},
		{"config_exposed_more.yaml", []string{
			`3:3: buffer.listen_auth.user: missing: password needs a user`,
			`5:5: buffer.listen_auth.nkey: want the public key of a user nkey (56 characters starting with U)`,
			`7:5: buffer.listen_tls.client_ca_file: needs cert_file and key_file`,
			`2:3: buffer.listen: [::]:4222 is reachable from other machines but has no TLS (buffer.listen_tls): credentials and events would cross the network in clear text; set cert_file and key_file, or listen on 127.0.0.1`,
			"10:3: admin.token: too short: want at least 16 characters, such as the output of `openssl rand -hex 32`",
		}},
		{"config_nats_urls.yaml", []string{
			// Passwords and tokens in URLs are never echoed.
			`3:3: buffer.urls[1]: want a server URL such as nats://127.0.0.1:4222, got "nats://xxxxx@nats-2:notaport"`,
			`3:3: buffer.urls[2]: want a nats, tls, ws or wss URL, got "https://xxxxx@nats-3:4222"`,
			`7:3: buffer.listen_auth: only for the embedded buffer`,
			`10:3: admin.token: may hold printable ASCII characters only, no spaces (it is sent in an HTTP header)`,
		}},
		{"config_syntax.yaml", []string{`1:11: sequence end token ']' not found`}},
		{"config_list.yaml", []string{`1:1: the top level must be a mapping of settings (data_dir, buffer, sources, sinks, …)`}},
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

func TestLoadProblemsWithoutPosition(t *testing.T) {
	tests := []struct{ file, want string }{
		{"config_empty.yaml", "testdata/config_empty.yaml: the file is empty: it needs at least one source and one sink"},
		{"config_no_sources.yaml", "testdata/config_no_sources.yaml: sources: no sources: this node (role ingest) would receive nothing"},
	}
	for _, tt := range tests {
		_, err := Load(filepath.Join("testdata", tt.file), testRegistry{})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: err = %v, want %q", tt.file, err, tt.want)
		}
	}
	if _, err := Load("testdata/does-not-exist.yaml", testRegistry{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSubstitution(t *testing.T) {
	t.Setenv("VIGIL_TEST_DIR", "/srv")
	t.Setenv("VIGIL_TEST_PORT", "9999")
	t.Setenv("VIGIL_TEST_EMPTY", "")
	t.Setenv("VIGIL_TEST_PASSWORD", "pa$$word ${not} expanded again")
	t.Setenv("VIGIL_TEST_ENV", "prod")
	cfg, err := Load("testdata/config_env.yaml", testRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/srv/data" {
		t.Errorf("data_dir = %q", cfg.DataDir)
	}
	s := cfg.Sources[0].Settings.(*fakeSource)
	tests := []struct{ name, got, want string }{
		{"default used when unset", s.Address, "127.0.0.1:9999"},
		{"file, trailing newline trimmed", s.Tokens[0], "s3cr3t-token"},
		{"$${ escapes", s.Tokens[1], "plain-${NOT_A_VAR}"},
		{"empty variable takes the default", s.Auth.User, "fallback"},
		{"value not expanded recursively", s.Auth.Password, "pa$$word ${not} expanded again"},
		{"map value", s.Labels["env"], "prod"},
		{"lone $ kept", cfg.Sinks[0].Settings.(*fakeSink).Path, "${HOME}/archive-$$-/srv"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// An unresolvable reference names the variable and the field, never a value.
func TestSubstitutionNeverEchoesValues(t *testing.T) {
	t.Setenv("VIGIL_TEST_DIR", "TOP-SECRET-DIR")
	t.Setenv("VIGIL_TEST_PASSWORD", "TOP-SECRET-PW")
	// VIGIL_TEST_ENV unset
	_, err := Load("testdata/config_env.yaml", testRegistry{})
	if err == nil {
		t.Fatal("loaded with VIGIL_TEST_ENV unset")
	}
	want := "testdata/config_env.yaml:13:7: sources.apps.labels.env: environment variable VIGIL_TEST_ENV is not set (use ${VIGIL_TEST_ENV:-default} for a default)"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
	for _, secret := range []string{"TOP-SECRET", "s3cr3t"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error echoes a value: %v", err)
		}
	}
}

func TestExpand(t *testing.T) {
	t.Setenv("VIGIL_TEST_A", "a")
	t.Setenv("VIGIL_TEST_B", "")
	tests := []struct {
		give, want, wantErr string
	}{
		{"plain", "plain", ""},
		{"${VIGIL_TEST_A}", "a", ""},
		{"x${VIGIL_TEST_A}y${VIGIL_TEST_A}z", "xayaz", ""},
		{"${VIGIL_TEST_B:-d}", "d", ""},
		{"${VIGIL_TEST_UNSET:-}", "", ""},
		{"${VIGIL_TEST_UNSET:-with:colon}", "with:colon", ""},
		{"$${VIGIL_TEST_A}", "${VIGIL_TEST_A}", ""},
		{"$$${VIGIL_TEST_A}", "$${VIGIL_TEST_A}", ""},
		{"$VIGIL_TEST_A", "$VIGIL_TEST_A", ""},
		{"${VIGIL_TEST_B}", "", "environment variable VIGIL_TEST_B is not set"},
		{"${VIGIL_TEST_UNSET}", "", "environment variable VIGIL_TEST_UNSET is not set"},
		{"${", "", "unclosed ${ … }"},
		{"${}", "", "empty ${}"},
	}
	for _, tt := range tests {
		l := &loader{file: "f", pos: map[string]ast.Node{}}
		got := l.expand(tt.give, "x.y")
		gotErr := ""
		if len(l.problems) > 0 {
			gotErr = l.problems[0].Message
		}
		if got != tt.want && gotErr == "" || !strings.HasPrefix(gotErr, tt.wantErr) || (tt.wantErr == "") != (gotErr == "") {
			t.Errorf("expand(%q) = %q, %q; want %q, %q", tt.give, got, gotErr, tt.want, tt.wantErr)
		}
	}
}

func TestRedacted(t *testing.T) {
	cfg, err := Load("testdata/config_full.yaml", testRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Buffer.Password = "bufpw"
	cfg.Buffer.Token = ""
	red := Redacted(cfg)
	if red.Buffer.Password != "<redacted>" || red.Buffer.Token != "" || red.Buffer.User != "" {
		t.Errorf("buffer: %+v", red.Buffer)
	}
	fs := red.Sources[0].Settings.(*fakeSource)
	if strings.Join(fs.Tokens, ",") != "<redacted>,<redacted>" || fs.Auth.Password != "<redacted>" {
		t.Errorf("source settings not redacted: %+v", fs)
	}
	if fs.Auth.User != "admin" || fs.Address != "0.0.0.0:8080" || red.DataDir != cfg.DataDir {
		t.Errorf("non-secret fields changed: %+v", fs)
	}
	// The original is untouched.
	orig := cfg.Sources[0].Settings.(*fakeSource)
	if cfg.Buffer.Password != "bufpw" || orig.Tokens[0] != "tok-one" || orig.Auth.Password != "hunter2" {
		t.Errorf("Redacted changed the original: %+v %+v", cfg.Buffer, orig)
	}
	// A value, not a pointer, works too.
	if r := Redacted(*orig); r.Tokens[1] != "<redacted>" || orig.Tokens[1] != "tok-two" {
		t.Errorf("value: %+v", r)
	}
	// Empty secrets stay empty, so a dump shows they are unset.
	if r := Redacted(fakeAuth{User: "u"}); r.Password != "" {
		t.Errorf("empty secret became %q", r.Password)
	}
}

// TestExposedListenersWithSecrets loads a config whose admin listener and embedded
// server are reachable from other machines with what each needs, the secrets read
// from the environment and a file; without the admin token it is refused, naming
// the line.
func TestExposedListenersWithSecrets(t *testing.T) {
	t.Setenv("VIGIL_TEST_ADMIN_TOKEN", "0123456789abcdef0123")
	cfg, err := Load("testdata/config_admin_token.yaml", testRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token != "0123456789abcdef0123" || cfg.Buffer.ListenAuth.Password != "s3cr3t-token" ||
		cfg.Buffer.ListenTLS.CertFile != "/etc/vigil/nats.crt" {
		t.Errorf("admin %+v buffer %+v", cfg.Admin, cfg.Buffer)
	}
	red := Redacted(cfg)
	if red.Admin.Token != "<redacted>" || red.Buffer.ListenAuth.Password != "<redacted>" || red.Buffer.ListenAuth.User != "node2" {
		t.Errorf("redacted: %+v %+v", red.Admin, red.Buffer.ListenAuth)
	}

	t.Setenv("VIGIL_TEST_ADMIN_TOKEN", "")
	_, err = Load("testdata/config_admin_token.yaml", testRegistry{})
	want := "testdata/config_admin_token.yaml:8:3: admin.token: environment variable VIGIL_TEST_ADMIN_TOKEN is not set"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("without the token: %v, want %s…", err, want)
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "localhost": true, "127.1.2.3": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "example.com": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		give, want string
		secrets    []string
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", nil},
		{"nats://vigil:pa55@nats-1:4222", "nats://vigil:xxxxx@nats-1:4222", []string{"pa55"}},
		// A user name alone is a token to NATS.
		{"tls://t0ken@nats-1:4222", "tls://xxxxx@nats-1:4222", []string{"t0ken"}},
		// Without a scheme, as nats.go accepts it.
		{"vigil:pa55@nats-1:4222", "nats://vigil:xxxxx@nats-1:4222", []string{"pa55"}},
		{"nats://vigil:p%40ss@nats-1", "nats://vigil:xxxxx@nats-1", []string{"p%40ss", "p@ss"}},
		// Unparseable: the whole user part goes.
		{"nats://vigil:pa55@nats-1:notaport", "nats://xxxxx@nats-1:notaport", []string{"pa55"}},
		{"nats://vigil:pa55@[::1", "nats://xxxxx@[::1", []string{"pa55"}},
		{"nats://vigil@", "nats://xxxxx@", []string{"vigil"}},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.give); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.give, got, tt.want)
		}
		if got := URLSecrets(tt.give); strings.Join(got, " ") != strings.Join(tt.secrets, " ") {
			t.Errorf("URLSecrets(%q) = %q, want %q", tt.give, got, tt.secrets)
		}
	}
	if got := RedactURLs([]string{"nats://a:b@h", "nats://h"}); strings.Join(got, ",") != "nats://a:xxxxx@h,nats://h" {
		t.Errorf("RedactURLs: %q", got)
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		give    string
		want    int64
		wantErr bool
	}{
		{"123", 123, false},
		{"0", 0, false},
		{"10MiB", 10 << 20, false},
		{"1 GiB", 1 << 30, false},
		{"512KB", 512e3, false},
		{"1.5GB", 1.5e9, false},
		{`"2KiB"`, 2048, false},
		{"'3M'", 3 << 20, false},
		{"1TiB", 1 << 40, false},
		{"10 parsecs", 0, true},
		{"-1MiB", 0, true},
		{"MiB", 0, true},
		{"", 0, true},
		{"[1]", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.give)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, err %v", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDefaultsValidate(t *testing.T) {
	c := Defaults()
	c.Embedded = true
	if err := c.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	c.Embedded = false
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sources: no sources") {
		t.Errorf("no components: %v", err)
	}
	c = Defaults()
	c.Embedded = true
	c.Limits.Memory = 32 << 20
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "limits.memory: must be at least 64MiB") {
		t.Errorf("small limits.memory: %v", err)
	}
	c = Defaults()
	c.Role = RoleProcess
	c.Embedded = true
	if c.RunsSources() || !c.RunsProcessing() || !c.RunsSinks() {
		t.Error("role process")
	}
	c.Role = RoleIngest
	if !c.RunsSources() || c.RunsProcessing() || c.RunsSinks() {
		t.Error("role ingest")
	}
}

func TestValidDataset(t *testing.T) {
	for s, want := range map[string]bool{
		"aws.alb": true, "a_b-c.9": true, "": false, ".a": false, "a.": false, "a..b": false,
		"a b": false, "a/b": false, "a*": false, strings.Repeat("a", 101): false, strings.Repeat("a", 100): true,
	} {
		if ValidDataset(s) != want {
			t.Errorf("ValidDataset(%q) != %v", s, want)
		}
	}
}
