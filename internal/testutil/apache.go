package testutil

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ApacheBin is Debian's Apache httpd, installed by scripts/test.sh (package apache2).
const ApacheBin = "/usr/sbin/apache2"

// Apache is a real Apache httpd serving on a loopback port and writing a combined
// access log (Log) into its own directory. Every request answers 404 and is logged.
type Apache struct {
	t      testing.TB
	Dir    string
	conf   string
	Addr   string
	cmd    *exec.Cmd
	done   chan struct{}
	client *http.Client
}

// StartApache starts httpd in the foreground with a minimal config written into a
// temporary directory, and stops it when the test ends. It skips the test when
// httpd is not installed.
func StartApache(t testing.TB) *Apache {
	t.Helper()
	if _, err := os.Stat(ApacheBin); err != nil {
		t.Skipf("%s not installed (scripts/test.sh installs Debian's apache2): %v", ApacheBin, err)
	}
	dir := t.TempDir()
	addr := FreeAddr(t)
	user := ""
	if os.Getuid() == 0 {
		// httpd will not serve as root; Debian's package creates www-data.
		user = "User www-data\nGroup www-data\n"
	}
	mods := "/usr/lib/apache2/modules"
	// mod_log_config and mod_unixd are compiled into Debian's httpd.
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
	a := &Apache{t: t, Dir: dir, conf: filepath.Join(dir, "httpd.conf"), Addr: addr, done: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second}}
	if err := os.WriteFile(a.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(ApacheBin, "-f", a.conf, "-DFOREGROUND")
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
	Eventually(t, 15*time.Second, "apache answering", func() bool {
		select {
		case <-a.done:
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("apache exited: %s\n%s", out.String(), errLog)
		default:
		}
		resp, err := a.client.Get("http://" + addr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return a
}

// Get sends one request with a fixed User-Agent and Referer.
func (a *Apache) Get(path string) error {
	req, err := http.NewRequest(http.MethodGet, "http://"+a.Addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "vigil-test/1.0")
	req.Header.Set("Referer", "http://example.com/from")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Log is the access log's path.
func (a *Apache) Log() string { return filepath.Join(a.Dir, "access.log") }

// Graceful runs `apache2 -k graceful`: httpd reopens its logs.
func (a *Apache) Graceful() error {
	if out, err := exec.Command(ApacheBin, "-f", a.conf, "-k", "graceful").CombinedOutput(); err != nil {
		return fmt.Errorf("apache2 -k graceful: %v\n%s", err, out)
	}
	return nil
}

// CopyTruncate rotates the log as logrotate's copytruncate does: copy it to dst,
// then truncate it (httpd keeps writing at the new end: O_APPEND).
func (a *Apache) CopyTruncate(dst string) error {
	b, err := os.ReadFile(a.Log())
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return err
	}
	return os.Truncate(a.Log(), 0)
}
