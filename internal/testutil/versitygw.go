package testutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Credentials and bucket of the test S3 server.
const (
	S3AccessKey = "vigiltest"
	S3Secret    = "vigiltestsecret"
	S3Bucket    = "security-archive"
)

// S3Gateway is a versitygw S3 server, pinned in go.mod as a tool, serving its posix
// backend over a directory that survives its restarts.
type S3Gateway struct {
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// versitygwBinary is the built binary of the pinned versitygw (see ToolBinary).
func versitygwBinary(t testing.TB) string {
	t.Helper()
	return ToolBinary(t, "versitygw")
}

func StartS3Gateway(t testing.TB) *S3Gateway {
	t.Helper()
	addr := FreeAddr(t)
	g := &S3Gateway{bin: versitygwBinary(t), dir: t.TempDir(), addr: addr}
	if err := os.MkdirAll(filepath.Join(g.dir, S3Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	g.Start(t)
	t.Cleanup(g.Stop)
	return g
}

func (g *S3Gateway) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(g.bin, "--access", S3AccessKey, "--secret", S3Secret, "--port", g.addr, "--quiet",
		"posix", g.dir)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.cmd = cmd
	g.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(g.done) }()
	Eventually(t, 30*time.Second, "versitygw answering", func() bool {
		resp, err := http.Get(g.Endpoint() + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

func (g *S3Gateway) Stop() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	g.cmd = nil
}

func (g *S3Gateway) Endpoint() string { return "http://" + g.addr }

// client is a plain SDK client of the gateway, for reading objects back.
func (g *S3Gateway) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(g.Endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(S3AccessKey, S3Secret, ""),
	})
}

// keys lists every key under prefix.
func (g *S3Gateway) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(g.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(S3Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// dataKeys lists the data objects (not the manifests).
func (g *S3Gateway) DataKeys(t testing.TB) []string {
	var out []string
	for _, k := range g.Keys(t, "") {
		if !strings.HasPrefix(k, "_vigil/") {
			out = append(out, k)
		}
	}
	return out
}

func (g *S3Gateway) Get(t testing.TB, key string) []byte {
	t.Helper()
	out, err := g.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(S3Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// NDJSONDocs reads every document of every NDJSON data object.
func (g *S3Gateway) NDJSONDocs(t testing.TB) []map[string]any {
	t.Helper()
	return S3NDJSONDocs(t, g.Client(), S3Bucket)
}

// S3NDJSONDocs reads every document of every NDJSON data object an s3 sink wrote
// to bucket (its manifests under _vigil/ skipped); any other object fails the test.
func S3NDJSONDocs(t testing.TB, c *s3.Client, bucket string) []map[string]any {
	t.Helper()
	ctx := context.Background()
	var docs []map[string]any
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if strings.HasPrefix(k, "_vigil/") {
				continue
			}
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
			if err != nil {
				t.Fatalf("get %s: %v", k, err)
			}
			data, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatalf("get %s: %v", k, err)
			}
			docs = append(docs, ndjsonDocs(t, k, data)...)
		}
	}
	return docs
}

// ndjsonDocs decodes one NDJSON object, compressed as its key's extension says.
func ndjsonDocs(t testing.TB, k string, data []byte) []map[string]any {
	t.Helper()
	var r io.Reader
	switch {
	case strings.HasSuffix(k, ".ndjson.gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		r = zr
	case strings.HasSuffix(k, ".ndjson.zst"):
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected object %s", k)
	}
	var docs []map[string]any
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var d map[string]any
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("%s: %q: %v", k, sc.Text(), err)
		}
		docs = append(docs, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return docs
}
