package pipeline

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// node is this node's lasting identity on a cluster: an id kept in
// <data_dir>/node.id, and an exclusive lock on that file for as long as the node
// runs. The lock is what lets a restarted node take its own sink leases back at
// once: no other process can be running with this id, so the holder it finds in a
// lease is a dead earlier run of itself.
type node struct {
	id   string
	lock *os.File
}

// openNode reads (or creates) the node id under dataDir and locks it. It fails when
// another process holds the lock.
func openNode(dataDir string) (*node, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node id: %w", err)
	}
	path := filepath.Join(dataDir, "node.id")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("node id: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data_dir %s is in use by another running Vigil process (%s is locked); give each node its own data_dir", dataDir, path)
		}
		return nil, fmt.Errorf("node id: lock %s: %w", path, err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("node id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		var r [8]byte
		_, _ = rand.Read(r[:])
		id = hex.EncodeToString(r[:])
		if _, err := f.WriteAt([]byte(id+"\n"), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("node id: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("node id: %w", err)
		}
	}
	return &node{id: id, lock: f}, nil
}

// close releases the lock.
func (n *node) close() {
	if n != nil && n.lock != nil {
		n.lock.Close()
		n.lock = nil
	}
}
