package pipeline

import (
	"strings"
	"testing"
)

// A node keeps its id across restarts, and a second process on the same data_dir
// is refused while the first runs (the lock is what makes taking back its own
// sink leases safe).
func TestNodeIDLastingAndLocked(t *testing.T) {
	dir := t.TempDir()
	n, err := openNode(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.id) != 16 {
		t.Fatalf("node id %q", n.id)
	}
	if _, err := openNode(dir); err == nil || !strings.Contains(err.Error(), "in use by another running Vigil process") {
		t.Fatalf("second open of a locked data_dir: %v", err)
	}
	id := n.id
	n.close()
	again, err := openNode(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	if again.id != id {
		t.Fatalf("node id changed across a restart: %q, then %q", id, again.id)
	}
}
