package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestBackfill ingests the objects under a prefix of a moto bucket with the
// settings of the config's s3 source, then runs again: nothing is read twice, and
// an object added since is the only one read.
func TestBackfill(t *testing.T) {
	m := testutil.StartMoto(t)
	hc := testutil.NewHTTPClient(t)
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), HTTPClient: hc})
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("old-logs")}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, lines int) {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		for i := range lines {
			fmt.Fprintf(zw, `http 2026-01-02T03:04:05.000000Z app/lb/1 10.0.0.1:%d 10.0.0.2:80 0.001 0.002 0.000 200 200 10 20 "GET http://example.com:80/%s/%d HTTP/1.1" "curl/8" - - arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1 "Root=1-x" "-" "-" 0 2026-01-02T03:04:05.000000Z "forward" "-" "-" "10.0.0.2:80" "200" "-" "-" TID_1`+"\n", 1000+i, key, i)
		}
		zw.Close()
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("old-logs"), Key: aws.String(key), Body: bytes.NewReader(b.Bytes())}); err != nil {
			t.Fatal(err)
		}
	}
	const prefix = "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2026/01/02/"
	put(prefix+"a.log.gz", 40)
	put(prefix+"b.log.gz", 25)
	put("AWSLogs/123456789012/CloudTrail-Digest/us-east-1/d.json.gz", 1) // outside the prefix

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "vigil.yaml")
	config := fmt.Sprintf(`data_dir: %s
admin: {address: ""}
sources:
  aws_logs: {type: s3, queue_url: %s/123456789012/unused, endpoint: %s, access_key_id: test, secret_access_key: test}
sinks:
  archive: {type: file_archive, inputs: ["*"], max_age: 200ms}
`, filepath.Join(dir, "data"), m.Endpoint(), m.Endpoint())
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := Main([]string{"backfill", "-c", cfgFile, "s3://old-logs/" + prefix}, nil, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("backfill exited %d: %s %s", code, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	out := run()
	if !strings.Contains(out, "2 object(s) to ingest") || !strings.Contains(out, "Backfilled 2 object(s), 65 record(s)") ||
		!strings.Contains(out, "backfill: 2/2 objects") {
		t.Errorf("first run:\n%s", out)
	}
	archive := filepath.Join(dir, "data", "archive")
	if n := len(testutil.ArchiveDocs(t, archive)); n != 65 {
		t.Errorf("%d documents archived, want 65 (delivered before the command returned)", n)
	}

	put(prefix+"c.log.gz", 5)
	out = run()
	if !strings.Contains(out, "1 object(s) to ingest") || !strings.Contains(out, "2 already done") || !strings.Contains(out, "Backfilled 1 object(s), 5 record(s)") {
		t.Errorf("second run:\n%s", out)
	}
	docs := testutil.ArchiveDocs(t, archive)
	seen := map[string]bool{}
	for _, d := range docs {
		id := fmt.Sprint(testutil.Field(d, "event.id"))
		if seen[id] {
			t.Errorf("duplicate event.id %s", id)
		}
		seen[id] = true
		if testutil.Field(d, "event.dataset") != "aws.elb_logs" {
			t.Errorf("dataset %v", testutil.Field(d, "event.dataset"))
		}
	}
	if len(docs) != 70 {
		t.Errorf("%d documents archived, want 70", len(docs))
	}
}
