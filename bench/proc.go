package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// proc is one peer process started by the harness, in its own process group so that
// stopping it reaches every child it started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // valid after done is closed
}

// startProc starts argv with env added, its output in logPath.
func startProc(name string, argv []string, env []string, dir, logPath string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs it.
func (p *proc) stop(grace time.Duration) {
	pgid := p.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	p.log.Close()
}

// tail returns the last bytes of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log.Name())
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// treeStats is the CPU time and peak resident memory of a process and its
// descendants.
type treeStats struct {
	cpu time.Duration // utime + stime, plus waited-for children's
	hwm int64         // sum of VmHWM (bytes) over the live processes
}

// statTree reads /proc for root and every process descending from it.
func statTree(root int) (treeStats, error) {
	parent := map[int]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return treeStats{}, err
	}
	type st struct{ ticks int64 }
	stats := map[int]st{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		ppid, ticks, err := parseStat(b)
		if err != nil {
			continue
		}
		parent[pid] = ppid
		stats[pid] = st{ticks}
	}
	if _, ok := stats[root]; !ok {
		return treeStats{}, fmt.Errorf("process %d is gone", root)
	}
	var out treeStats
	for pid, s := range stats {
		if !descends(pid, root, parent) {
			continue
		}
		out.cpu += time.Duration(s.ticks) * time.Second / clockTicks
		out.hwm += vmHWM(pid)
	}
	return out, nil
}

func descends(pid, root int, parent map[int]int) bool {
	for range 64 {
		if pid == root {
			return true
		}
		p, ok := parent[pid]
		if !ok || p == 0 || p == pid {
			return false
		}
		pid = p
	}
	return false
}

// parseStat returns the parent pid and utime+stime+cutime+cstime of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'.
func parseStat(b []byte) (ppid int, ticks int64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return 0, 0, errors.New("short stat")
	}
	ppid, _ = strconv.Atoi(f[1])
	for _, k := range f[11:15] {
		v, _ := strconv.ParseInt(k, 10, 64)
		ticks += v
	}
	return ppid, ticks, nil
}

// vmHWM is a process's peak resident set size in bytes, 0 when unknown.
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
		}
	}
	return "unknown CPU"
}
