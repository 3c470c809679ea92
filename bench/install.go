package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vigil-sec/vigil/internal/freeport"
)

// benthosVersion is the Benthos release the harness builds.
const benthosVersion = "v4.60.0"

// syslogNGDebs are the Debian packages unpacked into syslog-ng's prefix: the daemon
// and the libraries it needs that a Debian system with rsyslog lacks (syslog-ng-core
// and rsyslog conflict as packages, so syslog-ng is not installed, only unpacked).
var syslogNGDebs = []string{"syslog-ng-core", "libivykis0", "libnet1", "libwrap0", "libpcre3"}

// repoRoot is the directory of go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/vigil-sec/vigil\n")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("run the harness from inside the Vigil repository (no go.mod of github.com/vigil-sec/vigil above the working directory)")
		}
		dir = up
	}
}

// tools are the programs the harness runs, found or installed by install.
type tools struct {
	vigil     string
	rsyslogd  string
	syslogNG  string // the daemon inside its prefix
	sngPrefix string
	benthos   string
	versions  map[string]string
	ports     *freeport.Walker // the loopback ports peers listen on
}

func run(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, lastLines(out, 15))
	}
	return out, nil
}

func lastLines(b []byte, n int) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func sudo() []string {
	if os.Getuid() == 0 {
		return nil
	}
	return []string{"sudo"}
}

// install finds or installs every program of the peers wanted, into cache when it
// is not a system package. Anything missing that cannot be installed is an error.
func install(root, cache string, want map[string]bool, logf func(string, ...any)) (*tools, error) {
	t := &tools{versions: map[string]string{}, ports: &freeport.Walker{}}
	bin := filepath.Join(cache, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	// Vigil from this checkout, always rebuilt (the Go build cache makes it quick).
	t.vigil = filepath.Join(bin, "vigil")
	logf("building vigil from %s", root)
	if _, err := run(root, nil, "go", "build", "-o", t.vigil, "./cmd/vigil"); err != nil {
		return nil, err
	}
	if out, err := run(root, nil, "git", "describe", "--always", "--dirty"); err == nil {
		t.versions["vigil"] = strings.TrimSpace(string(out))
	}

	if want["rsyslog"] {
		if err := installRsyslog(t, logf); err != nil {
			return nil, err
		}
	}
	if want["syslog-ng"] {
		if err := installSyslogNG(t, cache, logf); err != nil {
			return nil, err
		}
	}
	if want["benthos"] {
		if err := installBenthos(t, cache, logf); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func installRsyslog(t *tools, logf func(string, ...any)) error {
	t.rsyslogd = "/usr/sbin/rsyslogd"
	mods := "/usr/lib/x86_64-linux-gnu/rsyslog"
	if _, err := os.Stat(t.rsyslogd); err != nil {
		logf("installing rsyslog (apt-get)")
		if _, err := run("", nil, "sh", "-c", strings.Join(append(sudo(), "apt-get update -qq"), " ")); err != nil {
			return fmt.Errorf("rsyslog: %w", err)
		}
		args := append(sudo(), "apt-get", "install", "-y", "-qq", "rsyslog")
		if _, err := run("", []string{"DEBIAN_FRONTEND=noninteractive"}, args[0], args[1:]...); err != nil {
			return fmt.Errorf("rsyslog: %w", err)
		}
	}
	for _, m := range []string{"imptcp.so", "imfile.so"} {
		if _, err := os.Stat(filepath.Join(mods, m)); err != nil {
			return fmt.Errorf("rsyslog: module %s missing in %s", m, mods)
		}
	}
	out, err := run("", nil, t.rsyslogd, "-v")
	if err != nil {
		return err
	}
	t.versions["rsyslog"] = strings.Fields(string(out))[1]
	return nil
}

// sngEnv is the environment syslog-ng runs with from its prefix.
func (t *tools) sngEnv() []string {
	p := t.sngPrefix
	return []string{"LD_LIBRARY_PATH=" + strings.Join([]string{
		filepath.Join(p, "usr/lib/x86_64-linux-gnu"), filepath.Join(p, "lib/x86_64-linux-gnu"),
		filepath.Join(p, "usr/lib/syslog-ng")}, ":")}
}

func (t *tools) sngModules() string { return filepath.Join(t.sngPrefix, "usr/lib/syslog-ng/3.38") }

func installSyslogNG(t *tools, cache string, logf func(string, ...any)) error {
	t.sngPrefix = filepath.Join(cache, "syslog-ng")
	t.syslogNG = filepath.Join(t.sngPrefix, "usr/sbin/syslog-ng")
	if _, err := os.Stat(t.syslogNG); err != nil {
		logf("unpacking syslog-ng from Debian's packages into %s", t.sngPrefix)
		dl, err := os.MkdirTemp(cache, "debs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dl)
		if _, err := run(dl, nil, "apt-get", append([]string{"download"}, syslogNGDebs...)...); err != nil {
			// The package lists may be missing on a fresh machine.
			if _, uerr := run("", nil, "sh", "-c", strings.Join(append(sudo(), "apt-get update -qq"), " ")); uerr != nil {
				return fmt.Errorf("syslog-ng: %w", err)
			}
			if _, err := run(dl, nil, "apt-get", append([]string{"download"}, syslogNGDebs...)...); err != nil {
				return fmt.Errorf("syslog-ng: %w", err)
			}
		}
		debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
		if len(debs) != len(syslogNGDebs) {
			return fmt.Errorf("syslog-ng: downloaded %d of %d packages", len(debs), len(syslogNGDebs))
		}
		for _, d := range debs {
			if _, err := run("", nil, "dpkg-deb", "-x", d, t.sngPrefix); err != nil {
				return fmt.Errorf("syslog-ng: %w", err)
			}
		}
	}
	out, err := run("", t.sngEnv(), t.syslogNG, "--version")
	if err != nil {
		return fmt.Errorf("syslog-ng does not run from its prefix: %w", err)
	}
	first := strings.SplitN(string(out), "\n", 2)[0]
	t.versions["syslog-ng"] = strings.Trim(strings.TrimPrefix(first, "syslog-ng 3 "), "()")
	return nil
}

// installBenthos builds Benthos's own main package in a throwaway module that
// requires the release: `go install …@version` needs the proxy's version list,
// which it may refuse for this module.
func installBenthos(t *tools, cache string, logf func(string, ...any)) error {
	t.benthos = filepath.Join(cache, "bin", "benthos-"+benthosVersion)
	t.versions["benthos"] = benthosVersion
	if _, err := os.Stat(t.benthos); err == nil {
		return nil
	}
	logf("building Benthos %s into %s (takes minutes the first time)", benthosVersion, t.benthos)
	mod := filepath.Join(cache, "benthos-build")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return err
	}
	gomod := "module benthosbuild\n\ngo 1.24\n\nrequire github.com/redpanda-data/benthos/v4 " + benthosVersion + "\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	if _, err := run(mod, nil, "go", "mod", "download", "github.com/redpanda-data/benthos/v4@"+benthosVersion); err != nil {
		return fmt.Errorf("benthos: %w", err)
	}
	if _, err := run(mod, nil, "go", "build", "-mod=mod", "-o", t.benthos, "github.com/redpanda-data/benthos/v4/cmd/benthos"); err != nil {
		return fmt.Errorf("benthos: %w", err)
	}
	return nil
}
