package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/parse/albparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudfrontparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudtrailparse"
	"github.com/vigil-sec/vigil/internal/parse/vpcflowparse"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// searchStore is where a seed test's search sink delivers: an Elasticsearch- or
// OpenSearch-compatible _bulk endpoint whose stored documents the test reads back,
// flattened to dotted field names.
type searchStore interface {
	BulkURL() string
	Rows(t testing.TB) []map[string]string
}

// seed002Store starts the store TestSeed002 delivers to: a real OpenSearch node
// (tools/opensearch-launcher), which honours the documents' _id, so the test can
// require exactly one document per record.
var seed002Store = func(t *testing.T) searchStore { return testutil.StartOpenSearch(t) }

// wafLine is an AWS WAF web ACL log record as the WAF developer guide's example
// shows it, with a request ID of its own.
const wafLine = `{"timestamp":1576280412771,"formatVersion":1,"webaclId":"arn:aws:wafv2:ap-southeast-2:111122223333:regional/webacl/STMTest/1EXAMPLE-2ARN-3ARN-4ARN-123456EXAMPLE","terminatingRuleId":"STMTest_SQLi_XSS","terminatingRuleType":"REGULAR","action":"BLOCK","terminatingRuleMatchDetails":[{"conditionType":"SQL_INJECTION","sensitivityLevel":"HIGH","location":"HEADER","matchedData":["10","AND","1"]}],"httpSourceName":"-","httpSourceId":"-","ruleGroupList":[],"rateBasedRuleList":[],"nonTerminatingMatchingRules":[],"httpRequest":{"clientIp":"1.1.1.1","country":"AU","headers":[{"name":"Host","value":"localhost:1989"},{"name":"User-Agent","value":"curl/7.61.1"},{"name":"Accept","value":"*/*"},{"name":"x-stm-test","value":"10 AND 1=1"}],"uri":"/myUri","args":"","httpVersion":"HTTP/1.1","httpMethod":"GET","requestId":"rid-%d"},"labels":[{"name":"value"}]}`

// TestSeed002 runs examples/seed-002-s3-opensearch.yaml as it is shipped, with its
// queue, endpoint and OpenSearch URL pointing at test servers: objects of the four
// AWS formats its key rules know, and WAF logs under waf/, uploaded to a bucket of
// moto that announces them on SQS, reach the search store once each, except the
// requests of the ELB health checker, which the example drops.
func TestSeed002(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil, moto and a search store as processes; skipped with -short")
	}
	moto := testutil.StartMoto(t)
	store := seed002Store(t)
	const bucket = "seed002-logs"
	queueURL := moto.NotifyingBucket(t, bucket, "log-events")

	dir := t.TempDir()
	adminAddr := testutil.FreeAddr(t)
	cfg, err := os.ReadFile(filepath.Join("..", "examples", "seed-002-s3-opensearch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(cfg), "\n"); n > 30 {
		t.Errorf("the example has %d lines; a seed example stays within 30", n)
	}
	cfgPath := writeConfig(t, dir, string(cfg)+fmt.Sprintf("admin: {address: %s}\n", adminAddr))
	for k, v := range map[string]string{
		"VIGIL_DATA_DIR": filepath.Join(dir, "data"), "LOG_QUEUE_URL": queueURL, "AWS_ENDPOINT": moto.Endpoint(),
		"OPENSEARCH_URL": store.BulkURL(), "OPENSEARCH_PASSWORD": "seed-002-password",
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	p := startVigil(t, adminAddr, "-c", cfgPath)

	const acct = "123456789012"
	want := records{}
	// ALB: the documentation's lines, and every fourth line of a second file from
	// the ELB health checker (dropped by the example's processor).
	albDoc, _ := golden(t, "albparse", "aws_doc_examples")
	albTypes, _ := golden(t, "albparse", "alb_types")
	albKey := "AWSLogs/" + acct + "/elasticloadbalancing/us-east-1/2026/12/07/" + acct + "_elasticloadbalancing_us-east-1_app.web.50dc6c495c0c9188_20261207T1500Z_10.0.0.1_a.log.gz"
	want.addLines(albKey, albDoc, albparse.Dataset)
	moto.Put(t, bucket, albKey, gzipBytes(t, albDoc))
	var checks strings.Builder
	healthChecks := 0
	for i, line := range strings.Split(strings.Repeat(string(albTypes), 20), "\n") {
		if line == "" {
			continue
		}
		if i%4 == 0 {
			line = strings.Replace(line, `"curl/7.46.0"`, `"ELB-HealthChecker/2.0"`, 1)
		}
		checks.WriteString(line + "\n")
	}
	checkKey := strings.Replace(albKey, "_a.log.gz", "_b.log.gz", 1)
	for i, line := range strings.Split(checks.String(), "\n") {
		if line == "" {
			continue
		}
		if strings.Contains(line, `"ELB-HealthChecker/2.0"`) {
			healthChecks++
			continue
		}
		want[fmt.Sprintf("%s#%d", checkKey, i+1)] = albparse.Dataset
	}
	if healthChecks == 0 {
		t.Fatal("no health-checker lines: the golden ALB lines changed")
	}
	moto.Put(t, bucket, checkKey, gzipBytes(t, []byte(checks.String())))

	// CloudTrail (and its digest, skipped by a built-in rule).
	ct, _ := golden(t, "cloudtrailparse", "otel_log_file")
	ctKey := "AWSLogs/" + acct + "/CloudTrail/us-east-1/2026/12/07/" + acct + "_CloudTrail_us-east-1_20261207T1500Z_abc.json.gz"
	for _, id := range goldenEventIDs(t, "cloudtrailparse", "otel_log_file") {
		want[ctKey+"@"+id] = cloudtrailparse.Dataset
	}
	moto.Put(t, bucket, ctKey, gzipBytes(t, ct))
	digest, err := os.ReadFile(filepath.Join("..", "internal", "parse", "cloudtrailparse", "testdata", "aws_doc_digest_gzip", "input.log"))
	if err != nil {
		t.Fatal(err)
	}
	moto.Put(t, bucket, "AWSLogs/"+acct+"/CloudTrail-Digest/us-east-1/2026/12/07/"+acct+"_CloudTrail-Digest_us-east-1_t_us-east-1_20261207T150000Z.json.gz", digest)

	// CloudFront and VPC flow logs.
	cf, cfEvents := golden(t, "cloudfrontparse", "aws_doc_example")
	cfKey := "cdn/E2EXAMPLE7Q1.2019-12-04-21.a1b2c3d4.gz"
	if n := want.addLines(cfKey, cf, cloudfrontparse.Dataset); n != cfEvents {
		t.Fatalf("cloudfront: %d lines, %d events in the golden case", n, cfEvents)
	}
	moto.Put(t, bucket, cfKey, gzipBytes(t, cf))
	// A flow log file as VPC delivers it to S3: its header line, then the records.
	flowLines, flowEvents := golden(t, "vpcflowparse", "default_v2")
	flow := append([]byte("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n"), flowLines...)
	flowKey := "AWSLogs/" + acct + "/vpcflowlogs/us-east-1/2026/12/07/" + acct + "_vpcflowlogs_us-east-1_fl-1234abcd_20261207T1500Z_hash.log.gz"
	if n := want.addLines(flowKey, flow, vpcflowparse.Dataset); n-1 != flowEvents {
		t.Fatalf("vpcflow: %d lines, %d events in the golden case", n-1, flowEvents)
	}
	delete(want, flowKey+"#1")
	moto.Put(t, bucket, flowKey, gzipBytes(t, flow))

	// WAF logs where a Firehose stream delivers them: JSON lines, by the example's rule.
	var waf strings.Builder
	for i := range 50 {
		fmt.Fprintf(&waf, wafLine+"\n", i)
	}
	wafKey := "waf/2026/12/07/15/aws-waf-logs-web-1-2026-12-07-15-00-00-0a1b2c3d.gz"
	want.addLines(wafKey, []byte(waf.String()), "aws.waf")
	moto.Put(t, bucket, wafKey, gzipBytes(t, []byte(waf.String())))
	t.Logf("%d records expected, %d health checks dropped", len(want), healthChecks)

	waitSearchable(t, p, store, len(want), 120*time.Second)
	testutil.Eventually(t, 30*time.Second, "every SQS message deleted", func() bool { return moto.QueueEmpty(t, queueURL) })
	if n := metricSum(t, adminAddr, "vigil_dead_lettered_total"); n != 0 {
		t.Errorf("%v dead letters, want none", n)
	}
	if n := metricSum(t, adminAddr, "vigil_discarded_total", `reason="drop:elb_health_checks"`); n != float64(healthChecks) {
		t.Errorf("%v events dropped by elb_health_checks, want %d", n, healthChecks)
	}
	if err := p.terminate(t, 60*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	rows := store.Rows(t)
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r["event.id"]] = true
	}
	checkSearch(t, rows, want, ids)
	if len(ids) != len(want) {
		t.Errorf("search store: %d distinct event.ids, want %d", len(ids), len(want))
	}
	if len(rows) != len(want) {
		t.Errorf("search store: %d documents, want exactly %d (one per record)", len(rows), len(want))
	}
}
