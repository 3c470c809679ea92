package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// OpenSearch is a single OpenSearch node (2.19, the server and module jars from
// Maven Central put together by tools/opensearch-launcher) run as a JVM process
// with HTTP on a loopback port and its data under a directory of the caller's.
//
// The node lives while its standard input is open: Stop closes it, and a test
// process that dies (even by kill -9) closes it too, so no node outlives its test.
type OpenSearch struct {
	// URL is the node's HTTP base URL, http://127.0.0.1:PORT.
	URL string
	// Dir holds the node's home (data, logs) and its output, node.log.
	Dir string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// OpenSearchVersion is the version tools/opensearch-launcher/pom.xml pins.
const OpenSearchVersion = "2.19.1"

// StartOpenSearch starts a node for one test, on a directory under t.TempDir(),
// and stops it when the test ends. settings are extra node settings as key=value
// (e.g. "thread_pool.write.queue_size=1"). Tests that share a node across a
// package use LaunchOpenSearch from TestMain or a sync.Once instead.
func StartOpenSearch(t testing.TB, settings ...string) *OpenSearch {
	t.Helper()
	o, err := LaunchOpenSearch(t.TempDir(), settings...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Stop)
	return o
}

// LaunchOpenSearch starts a node with its home in dir and waits until its
// cluster health is green. The launcher is built (Maven) when it is missing; see
// OpenSearchLauncherDir. The caller must call Stop.
func LaunchOpenSearch(dir string, settings ...string) (*OpenSearch, error) {
	launcher, err := ensureOpenSearchLauncher()
	if err != nil {
		return nil, err
	}
	port, err := ports.Take()
	if err != nil {
		return nil, err
	}
	home := filepath.Join(dir, "opensearch")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "node.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := []string{
		// A small heap: the machine is shared, and the tests index thousands of
		// documents, not millions.
		"-Xms512m", "-Xmx512m", "-XX:+UseSerialGC",
		"-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
		"-Dlog4j2.disable.jmx=true", "-Dlog4j.shutdownHookEnabled=false",
		"-cp", filepath.Join(launcher, "opensearch-launcher.jar") + string(os.PathListSeparator) + filepath.Join(launcher, "lib", "*"),
		"dev.vigil.opensearchlauncher.Main",
		"path.home=" + home,
		fmt.Sprintf("http.port=%d", port),
	}
	args = append(args, settings...)
	cmd := exec.Command(javaBinary(), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the OpenSearch node (java): %w", err)
	}
	o := &OpenSearch{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(o.done) }()
	deadline := time.Now().Add(180 * time.Second)
	for {
		select {
		case <-o.done:
			return nil, fmt.Errorf("the OpenSearch node exited before answering; its output (%s):\n%s", logFile.Name(), tail(logFile.Name(), 40))
		default:
		}
		resp, err := http.Get(o.URL + "/_cluster/health?wait_for_status=green&timeout=1s")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return o, nil
			}
		}
		if time.Now().After(deadline) {
			o.Stop()
			return nil, fmt.Errorf("the OpenSearch node did not become green in 180s; its output:\n%s", tail(logFile.Name(), 40))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Stop closes the node's standard input (it closes itself and the JVM exits),
// and kills it if it has not gone within 20s. It is idempotent.
func (o *OpenSearch) Stop() {
	if o.cmd == nil {
		return
	}
	_ = o.stdin.Close()
	select {
	case <-o.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-o.cmd.Process.Pid, syscall.SIGKILL)
		<-o.done
	}
	o.cmd = nil
}

// Do sends a request with a JSON (or NDJSON) body, which may be empty, and
// returns the status and the answer.
func (o *OpenSearch) Do(method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, o.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		ct := "application/json"
		if strings.HasPrefix(path, "/_bulk") || strings.Contains(path, "/_bulk") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// MustDo is Do that fails the test unless the status is 2xx.
func (o *OpenSearch) MustDo(t testing.TB, method, path, body string) []byte {
	t.Helper()
	code, data, err := o.Do(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if code/100 != 2 {
		t.Fatalf("%s %s: HTTP %d: %s", method, path, code, data)
	}
	return data
}

// OpenSearchLauncherDir is where the built launcher lives: $OPENSEARCH_LAUNCHER_DIR,
// or .cache/opensearch-launcher in the repository (scripts/test.sh builds it there).
func OpenSearchLauncherDir() string {
	if d := os.Getenv("OPENSEARCH_LAUNCHER_DIR"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(), ".cache", "opensearch-launcher")
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ensureOpenSearchLauncher returns the launcher's directory, building it with Maven
// first when it is missing. Test binaries of several packages may get here at
// once: an exclusive lock on a file beside it makes one build and the rest wait.
func ensureOpenSearchLauncher() (string, error) {
	dir := OpenSearchLauncherDir()
	jar := filepath.Join(dir, "opensearch-launcher.jar")
	if _, err := os.Stat(jar); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(jar); err == nil {
		return dir, nil // built by another process while we waited
	}
	tmp := dir + ".build"
	_ = os.RemoveAll(tmp)
	pom := filepath.Join(repoRoot(), "tools", "opensearch-launcher", "pom.xml")
	cmd := exec.Command("mvn", "-q", "-B", "-f", pom, "package", "-Dlauncher.out="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return "", fmt.Errorf("the OpenSearch launcher is not built in %s and Maven (mvn) is not installed to build it: %v; run scripts/test.sh", dir, err)
		}
		return "", fmt.Errorf("building the OpenSearch launcher (mvn -f %s package) failed: %v\n%s", pom, err, out.String())
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// javaBinary is $JAVA_HOME/bin/java when set, else java on the PATH; OpenSearch
// 2.19 runs on Java 17 or newer.
func javaBinary() string {
	if h := os.Getenv("JAVA_HOME"); h != "" {
		if _, err := os.Stat(filepath.Join(h, "bin", "java")); err == nil {
			return filepath.Join(h, "bin", "java")
		}
	}
	return "java"
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// BulkURL is the URL a sink's urls setting takes.
func (o *OpenSearch) BulkURL() string { return o.URL }

// Rows refreshes every index and returns every document of the non-system indices
// and data streams (at most 10,000), flattened to dotted keys ("event.id") with
// string values as a search UI shows them: strings as they are, other scalars in
// their JSON form, arrays as JSON. Each row also has "_index".
func (o *OpenSearch) Rows(t testing.TB) []map[string]string {
	t.Helper()
	// A data stream or index created a moment ago may not have its shard started
	// yet; a search then answers 503 ("all shards failed"): wait and ask again.
	o.MustDo(t, "GET", "/_cluster/health?wait_for_status=yellow&wait_for_no_initializing_shards=true&timeout=30s", "")
	var data []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		o.MustDo(t, "POST", "/_refresh", "")
		// Every open index and data stream; data streams' backing indices are
		// hidden (.ds-…), so an index pattern excluding ".*" would drop them.
		code, body, err := o.Do("POST", "/_search?size=10000", `{"query":{"match_all":{}}}`)
		if err != nil {
			t.Fatalf("search: %v", err)
		}
		if code == http.StatusOK {
			data = body
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("search: HTTP %d: %s", code, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var res struct {
		Hits struct {
			Hits []struct {
				Index  string         `json:"_index"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("search answer: %v", err)
	}
	rows := make([]map[string]string, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		if strings.HasPrefix(h.Index, ".") && !strings.HasPrefix(h.Index, ".ds-") {
			continue // the node's own system indices
		}
		row := map[string]string{"_index": h.Index}
		flattenInto(row, "", h.Source)
		rows = append(rows, row)
	}
	return rows
}

func flattenInto(row map[string]string, prefix string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if prefix != "" {
				k = prefix + "." + k
			}
			flattenInto(row, k, x)
		}
	case string:
		row[prefix] = v
	default:
		b, _ := json.Marshal(v)
		row[prefix] = string(b)
	}
}
