package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "1234 (rs:main Q:Reg (x)) S 77 1234 1234 0 -1 4194560 100 0 0 0 150 25 3 2 20 0 4 0 100 1000 200\n"
	ppid, ticks, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if ppid != 77 || ticks != 150+25+3+2 {
		t.Errorf("ppid %d ticks %d, want 77 and 180", ppid, ticks)
	}
	if _, _, err := parseStat([]byte("1 (x) S 0 1")); err == nil {
		t.Error("short line accepted")
	}
}

func TestStatTreeSelf(t *testing.T) {
	s, err := statTree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.hwm <= 0 {
		t.Errorf("no VmHWM for this process: %+v", s)
	}
	if _, err := statTree(1 << 30); err == nil {
		t.Error("a process that does not exist has stats")
	}
}

func TestLineCounterAndVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	lc := &lineCounter{path: path}
	defer lc.close()
	if n, err := lc.count(); n != 0 || err != nil {
		t.Fatalf("missing file: %d, %v", n, err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(`{"message":"seq=1"}` + "\n" + `{"message":"seq=2"}` + "\n")
	if n, _ := lc.count(); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
	f.WriteString(`{"message":"seq=3"}` + "\n")
	if n, _ := lc.count(); n != 3 {
		t.Fatalf("count %d after growth, want 3", n)
	}
	if err := verifyLines(path, 3, true); err != nil {
		t.Error(err)
	}
	if err := verifyLines(path, 4, true); err == nil || !strings.Contains(err.Error(), "3 lines, want 4") {
		t.Errorf("a missing line passed: %v", err)
	}
	f.WriteString("not json seq=4\n")
	if err := verifyLines(path, 4, true); err == nil {
		t.Error("a line that is no JSON passed")
	}
	if err := verifyLines(path, 4, false); err != nil {
		t.Errorf("raw lines: %v", err)
	}
}

func TestMedian(t *testing.T) {
	rs := []result{{secs: 3}, {secs: 1}, {secs: 2}, {secs: 100, err: os.ErrClosed}}
	if m := median(rs, func(r result) float64 { return r.secs }); m != 2 {
		t.Errorf("median %v, want 2 (failed runs left out)", m)
	}
	if thousands(1234567) != "1,234,567" || thousands(12) != "12" {
		t.Error(thousands(1234567), thousands(12))
	}
}

func TestNearEnd(t *testing.T) {
	for _, c := range []struct {
		n, total int64
		elapsed  time.Duration
		want     bool
	}{
		{0, 1000, 10 * time.Second, true},         // no rate yet: poll finely
		{500, 1000, 10 * time.Second, false},      // 10 s left
		{950, 1000, 10 * time.Second, true},       // ~0.5 s left
		{900, 1000, 20 * time.Second, false},      // ~2.2 s left
		{1000, 1000, 20 * time.Second, true},      // done
		{100, 1000, 100 * time.Millisecond, true}, // 0.9 s left
	} {
		if got := nearEnd(c.n, c.total, c.elapsed); got != c.want {
			t.Errorf("nearEnd(%d, %d, %s) = %v, want %v", c.n, c.total, c.elapsed, got, c.want)
		}
	}
}
