package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfile checks what `vigil run --cpuprofile FILE` relies on: the profile is
// written when the returned stop function runs, and a path that cannot be created
// is an error up front.
func TestCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	stop, err := startCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 20_000_000 {
		x += i % 7
	}
	_ = x
	stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A pprof profile is gzip-compressed protobuf.
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("not a gzip'd profile: %d bytes", len(b))
	}
	if _, err := startCPUProfile(filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.pprof")); err == nil {
		t.Error("a profile path in a missing directory was accepted")
	}
}
