// Package testutil holds helpers shared by Vigil's tests: polling with a deadline
// instead of sleeping, and reading an archive back.
package testutil

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Eventually polls cond every 20ms until it returns true or timeout passes, then
// fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ArchiveDocs reads every document of every finished archive file under dir.
// Temporary files and the journal are skipped. Unreadable files fail the test.
func ArchiveDocs(t testing.TB, dir string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() || (!strings.HasSuffix(path, ".ndjson.gz") && !strings.HasSuffix(path, ".ndjson.zst")) {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		var zr io.Reader
		if strings.HasSuffix(path, ".zst") {
			zd, err := zstd.NewReader(f)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			defer zd.Close()
			zr = zd
		} else if zr, err = gzip.NewReader(f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var doc map[string]any
			if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
				t.Fatalf("%s: bad document %q: %v", path, sc.Text(), err)
			}
			docs = append(docs, doc)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// Field returns the value at a dotted path of a decoded document.
func Field(doc map[string]any, path string) any {
	var cur any = doc
	for _, seg := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	return cur
}
