package filesource

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// fingerprintBytes is how much of a file's beginning identifies it together with its
// device and inode: a reused inode holds different first bytes.
const fingerprintBytes = 1024

// minCopyFingerprint is the least fingerprint length that identifies a file's content
// on its own (a copy made by copytruncate has another inode).
const minCopyFingerprint = 256

// fingerprint is the SHA-256 of a file's first n bytes (n ≤ fingerprintBytes).
type fingerprint struct {
	n   int
	sum [sha256.Size]byte
}

// readFingerprint hashes the first up to want bytes of f (fewer when f is shorter).
func readFingerprint(f *os.File, want int) (fingerprint, error) {
	buf := make([]byte, want)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fingerprint{}, err
	}
	return fingerprint{n: n, sum: sha256.Sum256(buf[:n])}, nil
}

// matches reports whether f begins with the bytes fp was taken of.
func (fp fingerprint) matches(f *os.File) bool {
	got, err := readFingerprint(f, fp.n)
	return err == nil && got.n == fp.n && got.sum == fp.sum
}

// checkpoint is one file's entry in the checkpoint file.
type checkpoint struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	FPLen  int    `json:"fp_len"`
	FP     string `json:"fp"`
	Offset int64  `json:"offset"`
	// Pending, when past Offset, is the end of the batch being stored when this was
	// written: after a crash the source stores exactly [Offset, Pending) again,
	// under the same ID, for the stream to drop if it was stored already.
	Pending int64 `json:"pending,omitempty"`
	// Done marks a gzip file read to its end (Offset counts decompressed bytes).
	Done bool `json:"done,omitempty"`
}

func (c checkpoint) fingerprint() (fingerprint, bool) {
	var fp fingerprint
	b, err := hex.DecodeString(c.FP)
	if err != nil || len(b) != len(fp.sum) || c.FPLen < 0 || c.FPLen > fingerprintBytes {
		return fp, false
	}
	fp.n = c.FPLen
	copy(fp.sum[:], b)
	return fp, true
}

// former is what was read of a file's former content (before a truncation): a copy of
// it found later (copytruncate) resumes there. Kept across restarts: the copy may be
// found only after one.
type former struct {
	FPLen   int    `json:"fp_len"`
	FP      string `json:"fp"`
	Offset  int64  `json:"offset"`
	Pending int64  `json:"pending,omitempty"`
}

type checkpointFile struct {
	Version int          `json:"version"`
	Files   []checkpoint `json:"files"`
	Former  []former     `json:"former,omitempty"`
}

// store keeps a source's checkpoints in one file, replaced atomically.
type store struct {
	dir  string
	path string
	last []byte
}

func newStore(dir string) *store {
	return &store{dir: dir, path: filepath.Join(dir, "checkpoints.json")}
}

// load returns the saved checkpoints; exists is false when there is no file yet (the
// source never ran).
func (s *store) load() (cps []checkpoint, exists bool, err error) {
	f, exists, err := s.loadAll()
	return f.Files, exists, err
}

func (s *store) loadAll() (f checkpointFile, exists bool, err error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, false, nil
	}
	if err != nil {
		return f, false, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, true, fmt.Errorf("%s: %w (move it away to start over)", s.path, err)
	}
	s.last = b
	return f, true, nil
}

// save writes the checkpoints: to a temporary file, fsynced, renamed over the old one,
// and the directory fsynced, so a crash leaves either the old or the new file whole.
func (s *store) save(cps []checkpoint) error {
	return s.saveAll(checkpointFile{Version: 1, Files: cps})
}

func (s *store) saveAll(f checkpointFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if bytes.Equal(b, s.last) {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, "checkpoints-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: a no-op
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return err
	}
	s.last = b
	return nil
}
