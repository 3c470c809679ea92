package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/parse/albparse"
	"github.com/vigil-sec/vigil/internal/parse/apacheparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudfrontparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudtrailparse"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestSeed001 runs examples/seed-001-kelk.yaml as it is shipped, with its variables
// pointing at test servers: a real Apache httpd writes the access log the file
// source tails; ALB, CloudFront and CloudTrail log files are uploaded to a bucket of
// moto, which announces each on an SQS queue through the bucket's notification
// configuration; every record must then be in the Elasticsearch-compatible store
// (VictoriaLogs) and exactly once in the S3 archive (a second bucket of moto).
func TestSeed001(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil, httpd, moto and VictoriaLogs as processes; skipped with -short")
	}
	apache := testutil.StartApache(t) // logs its /ready probes: before vigil, so start_at: end skips them
	moto := testutil.StartMoto(t)
	vl := testutil.StartVictoriaLogs(t)
	const logBucket, archiveBucket = "kelk-logs", "kelk-archive"
	queueURL := moto.NotifyingBucket(t, logBucket, "kelk-log-events")
	moto.Bucket(t, archiveBucket)

	dir := t.TempDir()
	adminAddr := testutil.FreeAddr(t)
	cfg, err := os.ReadFile(filepath.Join("..", "examples", "seed-001-kelk.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(cfg), "\n"); n > 30 {
		t.Errorf("the example has %d lines; a seed example stays within 30", n)
	}
	cfgPath := writeConfig(t, dir, quickArchive(t, string(cfg))+fmt.Sprintf("admin: {address: %s}\n", adminAddr))
	for k, v := range map[string]string{
		"VIGIL_DATA_DIR": filepath.Join(dir, "data"), "APACHE_LOGS": filepath.Join(apache.Dir, "access.log*"),
		"LOG_QUEUE_URL": queueURL, "AWS_ENDPOINT": moto.Endpoint(), "ES_URL": vl.BulkURL(), "ARCHIVE_BUCKET": archiveBucket,
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	p := startVigil(t, adminAddr, "-c", cfgPath)

	want := records{}
	// Requests to the web server, each logged by httpd as one combined-format line.
	for i := range 200 {
		if err := apache.Get(fmt.Sprintf("/kelk/%d", i)); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("apache /kelk/%d", i)] = apacheparse.Dataset
	}

	// Log files where the services write them, gzip'd as they write them.
	const acct = "123456789012"
	albDoc, _ := golden(t, "albparse", "aws_doc_examples")
	albTypes, _ := golden(t, "albparse", "alb_types")
	// A large ALB file: several intake parts (chunk_bytes is 256 KiB).
	var big strings.Builder
	for big.Len() < 1<<20 {
		big.Write(albDoc)
		big.Write(albTypes)
	}
	cfDoc, cfDocEvents := golden(t, "cloudfrontparse", "aws_doc_example")
	// CloudFront's request ID is the event's id: the second file has only the
	// requests of its golden case that the first does not (the cases share examples).
	cfElastic, _ := golden(t, "cloudfrontparse", "elastic_layout")
	var cfLater []string
	for _, line := range strings.SplitAfter(string(cfElastic), "\n") {
		if f := strings.Split(line, "\t"); len(f) < 15 || !strings.Contains(string(cfDoc), "\t"+f[14]+"\t") {
			cfLater = append(cfLater, line)
		}
	}
	ctFile, _ := golden(t, "cloudtrailparse", "otel_log_file")
	ctRole, _ := golden(t, "cloudtrailparse", "assumed_role_web_identity")
	digest, err := os.ReadFile(filepath.Join("..", "internal", "parse", "cloudtrailparse", "testdata", "aws_doc_digest_gzip", "input.log"))
	if err != nil {
		t.Fatal(err)
	}
	albPrefix := "AWSLogs/" + acct + "/elasticloadbalancing/us-east-2/2026/12/07/" + acct + "_elasticloadbalancing_us-east-2_app.my-loadbalancer.50dc6c495c0c9188_20261207T1505Z_"
	ctPrefix := "AWSLogs/" + acct + "/CloudTrail/us-east-1/2026/12/07/" + acct + "_CloudTrail_us-east-1_20261207T1505Z_"
	objects := []struct {
		key, dataset string
		body         []byte
		events       int // for whole-file formats; line formats: one per line
		ids          []string
	}{
		{key: albPrefix + "192.0.2.1_2x9m0xr5.log.gz", dataset: albparse.Dataset, body: []byte(big.String())},
		{key: albPrefix + "192.0.2.2_7zq1a3bc.log.gz", dataset: albparse.Dataset, body: albDoc},
		{key: "cloudfront/E2EXAMPLE7Q1.2019-12-04-21.a1b2c3d4.gz", dataset: cloudfrontparse.Dataset, body: cfDoc, events: cfDocEvents},
		{key: "cloudfront/E2EXAMPLE7Q1.2019-12-13-22.e5f6a7b8.gz", dataset: cloudfrontparse.Dataset, body: []byte(strings.Join(cfLater, ""))},
		{key: ctPrefix + "Yk2b1Ab3XnTmOcQd.json.gz", dataset: cloudtrailparse.Dataset, body: ctFile, ids: goldenEventIDs(t, "cloudtrailparse", "otel_log_file")},
		{key: ctPrefix + "Qz9c8Xp1LmNoPrSt.json.gz", dataset: cloudtrailparse.Dataset, body: ctRole, ids: goldenEventIDs(t, "cloudtrailparse", "assumed_role_web_identity")},
	}
	for _, o := range objects {
		if o.ids != nil {
			for _, id := range o.ids {
				want[o.key+"@"+id] = o.dataset
			}
		} else if n := want.addLines(o.key, o.body, o.dataset); o.events != 0 && n != o.events {
			t.Fatalf("%s: %d lines, but the golden case has %d events", o.key, n, o.events)
		}
		moto.Put(t, logBucket, o.key, gzipBytes(t, o.body))
	}
	// A CloudTrail digest file (skipped by a key rule), and a VPC flow log, which
	// the example has no rule for: dead-lettered with its key.
	moto.Put(t, logBucket, "AWSLogs/"+acct+"/CloudTrail-Digest/us-east-1/2026/12/07/"+acct+"_CloudTrail-Digest_us-east-1_trail_us-east-1_20261207T150500Z.json.gz", digest)
	moto.Put(t, logBucket, "AWSLogs/"+acct+"/vpcflowlogs/us-east-1/2026/12/07/"+acct+"_vpcflowlogs_us-east-1_fl-1234abcd_20261207T1505Z_hash.log.gz",
		gzipBytes(t, []byte("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n")))
	t.Logf("%d records expected", len(want))

	waitSearchable(t, p, vl, len(want), 120*time.Second)
	testutil.Eventually(t, 30*time.Second, "every SQS message deleted", func() bool { return moto.QueueEmpty(t, queueURL) })
	if n := metricSum(t, adminAddr, "vigil_dead_lettered_total"); n != 1 {
		t.Errorf("%v dead letters, want 1 (the VPC flow log no rule matches)", n)
	}
	if n := metricSum(t, adminAddr, "vigil_dead_lettered_total", `stage="intake"`, `component="aws_logs"`); n != 1 {
		t.Errorf("%v dead letters from the s3 source, want 1", n)
	}
	if n := metricSum(t, adminAddr, "vigil_discarded_total", `component="aws_logs"`, `reason="skipped_key"`); n != 1 {
		t.Errorf("%v objects skipped by key, want 1 (the digest)", n)
	}
	// SIGTERM: the s3 sink uploads the objects it holds open before vigil exits.
	if err := p.terminate(t, 60*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	archived := checkArchive(t, testutil.S3NDJSONDocs(t, moto.S3(t), archiveBucket), want)
	checkSearch(t, vl.Rows(t), want, archived)
}
