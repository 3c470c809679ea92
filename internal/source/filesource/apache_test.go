package filesource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/filesource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

const apacheBin = "/usr/sbin/apache2"

// apache is a real Apache httpd (Debian's apache2 package) serving on a loopback port
// and writing a combined access log into its directory.
type apache struct {
	t    *testing.T
	dir  string
	conf string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startApache(t *testing.T) *apache {
	t.Helper()
	if _, err := os.Stat(apacheBin); err != nil {
		t.Skipf("%s not installed (scripts/test.sh installs Debian's apache2): %v", apacheBin, err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	user := ""
	if os.Getuid() == 0 {
		// httpd will not serve as root; Debian's package creates www-data.
		user = "User www-data\nGroup www-data\n"
	}
	mods := "/usr/lib/apache2/modules"
	conf := fmt.Sprintf(`ServerRoot %[1]q
ServerName 127.0.0.1
Listen %[2]s
PidFile %[1]s/httpd.pid
ErrorLog %[1]s/error.log
%[3]sLoadModule mpm_event_module %[4]s/mod_mpm_event.so
LoadModule authz_core_module %[4]s/mod_authz_core.so
LoadModule dir_module %[4]s/mod_dir.so
LoadModule mime_module %[4]s/mod_mime.so
TypesConfig /etc/mime.types
DocumentRoot %[1]q
LogFormat "%%h %%l %%u %%t \"%%r\" %%>s %%O \"%%{Referer}i\" \"%%{User-Agent}i\"" combined
CustomLog %[1]s/access.log combined
`, dir, addr, user, mods)
	a := &apache{t: t, dir: dir, conf: filepath.Join(dir, "httpd.conf"), addr: addr, done: make(chan struct{})}
	if err := os.WriteFile(a.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(apacheBin, "-f", a.conf, "-DFOREGROUND")
	out := &strings.Builder{}
	a.cmd.Stdout, a.cmd.Stderr = out, out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
	})
	testutil.Eventually(t, 15*time.Second, "apache answering", func() bool {
		select {
		case <-a.done:
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("apache exited: %s\n%s", out.String(), errLog)
		default:
		}
		resp, err := http.Get("http://" + addr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return a
}

// get sends one request; apache logs it (404: there is nothing to serve).
func (a *apache) get(path string) {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.addr+path, nil)
	req.Header.Set("User-Agent", "vigil-filesource-test/1.0")
	req.Header.Set("Referer", "http://example.com/from")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func (a *apache) log() string { return filepath.Join(a.dir, "access.log") }

// graceful is `apache2 -k graceful`: the log files are reopened.
func (a *apache) graceful() {
	a.t.Helper()
	if out, err := exec.Command(apacheBin, "-f", a.conf, "-k", "graceful").CombinedOutput(); err != nil {
		a.t.Fatalf("apache2 -k graceful: %v\n%s", err, out)
	}
}

// TestApacheRotation follows a real Apache's combined access log through a rename +
// graceful restart and a copytruncate, into the archive of a real pipeline, and finds
// every request there exactly once.
func TestApacheRotation(t *testing.T) {
	a := startApache(t)
	dir := t.TempDir()
	reg := components.Builtin()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	fc := filesource.NewConfig()
	fc.Paths = []string{filepath.Join(a.dir, "access.log*")}
	fc.Exclude = []string{"*.gz"}
	fc.StartAt = "beginning"
	fc.ScanInterval = 100 * time.Millisecond
	fc.PollInterval = 20 * time.Millisecond
	ac := archivesink.NewConfig()
	ac.MaxAge = 200 * time.Millisecond
	opts, _ := reg.FormatConfig("apache")
	cfg.Sources = []*config.Source{{Name: "apache", Type: "file", Format: "apache", FormatOptions: opts, Settings: fc}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: ac}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: log, Version: "test", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})

	n := 0
	send := func(k int) {
		for range k {
			a.get(fmt.Sprintf("/req/%d", n))
			n++
		}
	}
	send(50)
	// Rotation by rename and graceful restart (logrotate's default with apache2's
	// postrotate): requests between the rename and the restart still go to the
	// renamed file.
	if err := os.Rename(a.log(), a.log()+".1"); err != nil {
		t.Fatal(err)
	}
	send(20)
	a.graceful()
	testutil.Eventually(t, 10*time.Second, "apache reopened its log", func() bool {
		_, err := os.Stat(a.log())
		return err == nil
	})
	send(50)
	// Rotation by copytruncate: apache keeps its file open (O_APPEND).
	b, err := os.ReadFile(a.log())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.log()+".2", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(a.log(), 0); err != nil {
		t.Fatal(err)
	}
	send(50)
	// A compressed older rotation is excluded.
	if err := os.WriteFile(a.log()+".3.gz", []byte("\x1f\x8b not read"), 0o644); err != nil {
		t.Fatal(err)
	}
	send(30)

	archive := filepath.Join(dir, "archive")
	var docs []map[string]any
	testutil.Eventually(t, 60*time.Second, fmt.Sprintf("%d requests in the archive", n), func() bool {
		docs = testutil.ArchiveDocs(t, archive)
		reqs := 0
		for _, d := range docs {
			if strings.HasPrefix(fmt.Sprint(testutil.Field(d, "url.original")), "/req/") {
				reqs++
			}
		}
		return reqs >= n
	})
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now
	docs = testutil.ArchiveDocs(t, archive)
	count := map[string]int{}
	for _, d := range docs {
		count[fmt.Sprint(testutil.Field(d, "url.original"))]++
		if ua := testutil.Field(d, "user_agent.original"); ua != "vigil-filesource-test/1.0" && !strings.HasPrefix(fmt.Sprint(testutil.Field(d, "url.original")), "/ready") {
			t.Errorf("user_agent.original %v in %v", ua, d)
		}
	}
	for i := range n {
		if c := count[fmt.Sprintf("/req/%d", i)]; c != 1 {
			t.Errorf("/req/%d archived %d times", i, c)
		}
	}
	if len(docs) != n+count["/ready"] {
		t.Errorf("%d documents for %d requests (+%d readiness probes)", len(docs), n, count["/ready"])
	}
}
