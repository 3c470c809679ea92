package syslogsource_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// need returns the path of a program the test suite requires, failing (not skipping)
// with the Debian package to install when it is missing: CI installs them.
func need(t *testing.T, program, pkg string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/sbin/", "/usr/bin/"} {
		if p, err := exec.LookPath(dir + program); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: these tests use the real sender; install it with `apt-get install -y %s`", program, pkg)
	return ""
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealSenders sends through util-linux's logger and through rsyslog forwarding
// with omfwd (TCP octet-counted, TCP newline, UDP) and checks every message is
// archived once with its syslog fields.
func TestRealSenders(t *testing.T) {
	logger := need(t, "logger", "bsdutils")
	rsyslogd := need(t, "rsyslogd", "rsyslog")
	dir := t.TempDir()
	_, src := start(t, testConfig(t, dir, nil))
	tcpPort, udpPort := port(t, src.TCPAddr()), port(t, src.UDPAddr())
	archive := filepath.Join(dir, "archive")
	want := 0

	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(logger, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("logger %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	// logger: one invocation per framing and protocol.
	run("--server", "127.0.0.1", "--port", tcpPort, "--tcp", "--rfc5424", "--msgid", "ID9", "-t", "vtag", "-p", "local3.warning", "logger tcp rfc5424")
	run("--server", "127.0.0.1", "--port", tcpPort, "--tcp", "--octet-count", "--rfc5424", "-t", "vtag", "logger tcp octet-count")
	run("--server", "127.0.0.1", "--port", tcpPort, "--tcp", "--rfc3164", "-t", "vtag", "logger tcp rfc3164")
	run("--server", "127.0.0.1", "--port", udpPort, "--udp", "--rfc5424", "-t", "vtag", "--sd-id", "test@32473", "--sd-param", `k="v"`, "logger udp rfc5424")
	run("--server", "127.0.0.1", "--port", udpPort, "--udp", "--rfc3164", "-t", "vtag", "-p", "auth.err", "logger udp rfc3164")
	want += 5
	docs := waitDocs(t, archive, want)
	checkFields(t, docs["logger tcp rfc5424"], map[string]any{"log.syslog.appname": "vtag", "log.syslog.msgid": "ID9",
		"log.syslog.facility.name": "local3", "log.syslog.severity.name": "warning", "log.syslog.version": "1"})
	checkFields(t, docs["logger tcp octet-count"], map[string]any{"log.syslog.appname": "vtag", "log.syslog.version": "1"})
	checkFields(t, docs["logger tcp rfc3164"], map[string]any{"log.syslog.appname": "vtag", "log.syslog.priority": 13})
	checkFields(t, docs["logger udp rfc5424"], map[string]any{"log.syslog.structured_data.test@32473.k": "v"})
	checkFields(t, docs["logger udp rfc3164"], map[string]any{"log.syslog.facility.name": "auth", "log.syslog.severity.name": "err"})

	// rsyslog: messages written to its unix sockets (as programs log locally) are
	// forwarded by omfwd, one socket per forwarding action.
	// A short directory: unix socket paths are limited to 108 bytes.
	rdir, err := os.MkdirTemp("", "vsl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rdir) })
	if err := os.Mkdir(filepath.Join(rdir, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(rdir, "rsyslog.conf")
	fwd := func(proto, extra string) string {
		return fmt.Sprintf(`action(type="omfwd" target="127.0.0.1" port="%s" protocol="%s" %s
  action.resumeRetryCount="-1" queue.type="LinkedList" queue.saveOnShutdown="off")`, map[string]string{"tcp": tcpPort, "udp": udpPort}[proto], proto, extra)
	}
	writeFile(t, conf, fmt.Sprintf(`global(workDirectory=%q)
module(load="imuxsock" SysSock.Use="off")
ruleset(name="tcpoctet") { %s }
ruleset(name="tcpnl") { %s }
ruleset(name="udp") { %s }
input(type="imuxsock" Socket=%q Ruleset="tcpoctet" RateLimit.Interval="0" CreatePath="on")
input(type="imuxsock" Socket=%q Ruleset="tcpnl" RateLimit.Interval="0")
input(type="imuxsock" Socket=%q Ruleset="udp" RateLimit.Interval="0")
`, filepath.Join(rdir, "work"),
		fwd("tcp", `TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"`),
		fwd("tcp", `template="RSYSLOG_ForwardFormat"`),
		fwd("udp", `template="RSYSLOG_SyslogProtocol23Format"`),
		filepath.Join(rdir, "octet.sock"), filepath.Join(rdir, "nl.sock"), filepath.Join(rdir, "udp.sock")))
	startRsyslog(t, rsyslogd, conf, filepath.Join(rdir, "rsyslogd.pid"), rdir)

	const perSocket = 50
	for _, sock := range []string{"octet", "nl", "udp"} {
		for i := range perSocket {
			run("-u", filepath.Join(rdir, sock+".sock"), "--socket-errors=on", "-t", "rtag", "-p", "daemon.notice",
				fmt.Sprintf("rsyslog %s %d", sock, i))
		}
	}
	want += 3 * perSocket
	docs = waitDocs(t, archive, want)
	for _, sock := range []string{"octet", "nl", "udp"} {
		for i := range perSocket {
			msg := fmt.Sprintf("rsyslog %s %d", sock, i)
			checkFields(t, docs[msg], map[string]any{"log.syslog.appname": "rtag", "log.syslog.facility.name": "daemon",
				"log.syslog.severity.name": "notice", "event.dataset": "syslog"})
		}
	}
	if v := testutil.Field(docs["rsyslog octet 0"], "log.syslog.version"); v != "1" {
		t.Errorf("octet-counted forward with RSYSLOG_SyslogProtocol23Format: want RFC 5424 (version 1), got %v", v)
	}
	if v := testutil.Field(docs["rsyslog nl 0"], "log.syslog.version"); v != nil {
		t.Errorf("RSYSLOG_ForwardFormat is RFC 3164: want no version, got %v", v)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startRsyslog runs rsyslogd in the foreground with conf until the test ends, and
// waits for its sockets.
func startRsyslog(t *testing.T, rsyslogd, conf, pidFile, dir string) {
	t.Helper()
	cmd := exec.Command(rsyslogd, "-n", "-f", conf, "-i", pidFile)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting rsyslogd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("rsyslogd output:\n%s", out.String())
		}
	})
	testutil.Eventually(t, 20*time.Second, "rsyslogd sockets", func() bool {
		select {
		case <-done:
			t.Fatalf("rsyslogd exited: %s", out.String())
		default:
		}
		for _, s := range []string{"octet", "nl", "udp"} {
			if _, err := os.Stat(filepath.Join(dir, s+".sock")); err != nil {
				return false
			}
		}
		return true
	})
}
