package filesource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreSlots: writes alternate between the two slots; a torn slot (a crash during
// its write) is skipped for the other, which holds the checkpoint before; a version 1
// checkpoints.json is read when there is no slot and removed by the first write.
func TestStoreSlots(t *testing.T) {
	dir := t.TempDir()
	cp := func(off int64) []checkpoint {
		return []checkpoint{{Path: "/x", Dev: 1, Ino: 2, FPLen: 3, FP: "00", Offset: off}}
	}
	legacy := filepath.Join(dir, "checkpoints.json")
	if err := os.WriteFile(legacy, []byte(`{"version":1,"files":[{"path":"/x","offset":7,"pending":9}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	st := newStore(dir)
	cps, exists, err := st.load()
	if err != nil || !exists || len(cps) != 1 || cps[0].Offset != 7 || len(cps[0].cuts()) != 1 || cps[0].cuts()[0] != 9 {
		t.Fatalf("legacy: %+v %v %v", cps, exists, err)
	}
	for off := int64(10); off <= 13; off++ {
		if err := st.save(cp(off)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("legacy file still there: %v", err)
	}
	st.close()
	load := func() int64 {
		t.Helper()
		cps, exists, err := newStore(dir).load()
		if err != nil || !exists || len(cps) != 1 {
			t.Fatalf("load: %+v %v %v", cps, exists, err)
		}
		return cps[0].Offset
	}
	if got := load(); got != 13 {
		t.Fatalf("newest: offset %d, want 13", got)
	}
	// Offset 13 went to slot 1 (writes 10, 11, 12, 13 alternate from slot 0). Tear it.
	b, err := os.ReadFile(filepath.Join(dir, "checkpoints.1"))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0xff
	if err := os.WriteFile(filepath.Join(dir, "checkpoints.1"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := load(); got != 12 {
		t.Fatalf("torn newest slot: offset %d, want 12 from the other", got)
	}
	// The next write goes to the torn slot, not over the whole one.
	st = newStore(dir)
	if _, _, err := st.load(); err != nil {
		t.Fatal(err)
	}
	if err := st.save(cp(14)); err != nil {
		t.Fatal(err)
	}
	st.close()
	if got := load(); got != 14 {
		t.Fatalf("after rewrite: offset %d, want 14", got)
	}
	if _, body, _, ok, err := readSlot(filepath.Join(dir, "checkpoints.0")); err != nil || !ok || !strings.Contains(string(body), `"offset":12`) {
		t.Fatalf("slot 0 (offset 12) changed by the write: %q %v %v", body, ok, err)
	}
	// Both torn: an error that says what to do, never a silent start from scratch.
	for _, n := range []string{"checkpoints.0", "checkpoints.1"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := newStore(dir).load(); err == nil {
		t.Fatal("both slots torn: no error")
	}
}
