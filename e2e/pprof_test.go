package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// `vigil run --pprof` serves Go's profiles on the admin address (a heap profile is
// how docs/performance.md found what holds the memory), and without it they are not
// there.
func TestPprofOnAdminAddress(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("pprof=", on), func(t *testing.T) {
			dir := t.TempDir()
			adminAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
			cfgPath := writeConfig(t, dir, fmt.Sprintf(`
data_dir: %s
admin: {address: %s}
sources:
  web: {type: http, address: %s, format: ndjson}
sinks:
  archive: {type: file_archive, inputs: ["*"]}
`, filepath.Join(dir, "data"), adminAddr, httpAddr))
			args := []string{"-c", cfgPath}
			if on {
				args = append(args, "--pprof")
			}
			p := startVigil(t, adminAddr, args...)
			client := &http.Client{Timeout: 10 * time.Second}
			resp, err := client.Get("http://" + adminAddr + "/debug/pprof/heap?debug=1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if on && (resp.StatusCode != 200 || !strings.Contains(string(body), "heap profile")) {
				t.Fatalf("with --pprof: %d %.200s", resp.StatusCode, body)
			}
			if !on && resp.StatusCode != http.StatusNotFound {
				t.Fatalf("without --pprof: %d, want 404", resp.StatusCode)
			}
			if err := p.terminate(t, 30*time.Second); err != nil {
				t.Fatalf("exit: %v", err)
			}
		})
	}
}
