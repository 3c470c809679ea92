package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// kinesisClient is a plain SDK client of a Kinesis-compatible server.
func kinesisClient(endpoint string) *kinesis.Client {
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(testutil.S3AccessKey, testutil.S3Secret, "")})
}

// createStream creates a stream and waits until it is ACTIVE.
func createStream(t *testing.T, c *kinesis.Client, name string, shards int32) {
	t.Helper()
	if _, err := c.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "stream "+name+" active", func() bool {
		out, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
	})
}

// putRecords writes records to a stream, each under its own partition key.
func putRecords(t *testing.T, c *kinesis.Client, stream string, records map[string][]byte) {
	t.Helper()
	var entries []types.PutRecordsRequestEntry
	for key, data := range records {
		entries = append(entries, types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(key)})
	}
	for i := 0; i < len(entries); i += 500 {
		out, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries[i:min(i+500, len(entries))]})
		if err != nil || aws.ToInt32(out.FailedRecordCount) > 0 {
			t.Fatalf("put records: %v (%v failed)", err, out)
		}
	}
}

// TestSeed000 runs examples/seed-000-origin.yaml as shipped, with its optional
// Kinesis intake uncommented and its variables pointing at test servers: JSON
// events over HTTP, syslog over TCP from util-linux's logger, and JSON records
// already in a Kinesis stream (kinesalite) reach the S3 archive (versitygw) exactly
// once each and Splunk (a local HTTP Event Collector that follows Splunk's
// documented protocol, with indexer acknowledgement) at least once each.
func TestSeed000(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil, kinesalite and versitygw as processes; skipped with -short")
	}
	logger, err := exec.LookPath("logger")
	if err != nil {
		t.Fatalf("logger not found (Debian package bsdutils; scripts/test.sh installs it): %v", err)
	}
	gw := testutil.StartS3Gateway(t)
	kl := testutil.StartKinesalite(t)
	hec := testutil.StartHEC(t, "seed-000-hec-token", true)

	// Producers wrote to the stream before Vigil took over: two shards.
	kc := kinesisClient(kl.Endpoint())
	createStream(t, kc, "telemetry", 2)
	const perIntake = 40
	want := map[string]bool{}
	kinesisRecords := map[string][]byte{}
	for i := range perIntake {
		tid := fmt.Sprintf("k%d", i)
		want[tid] = true
		kinesisRecords[tid] = fmt.Appendf(nil, `{"tid":%q,"message":"from logstash-in","host":{"name":"web-%d"}}`, tid, i%3)
	}
	putRecords(t, kc, "telemetry", kinesisRecords)

	dir := t.TempDir()
	httpAddr, syslogAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	raw, err := os.ReadFile(filepath.Join("..", "examples", "seed-000-origin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The shipped file with the optional Kinesis intake uncommented, plus a loopback
	// admin address for startVigil.
	cfg := strings.ReplaceAll(string(raw), "  # queue:", "  queue:")
	cfg = strings.ReplaceAll(cfg, "  #   ", "    ")
	if cfg == string(raw) || !strings.Contains(cfg, "type: kinesis") {
		t.Fatal("the seed file no longer has the commented Kinesis intake this test turns on")
	}
	cfgPath := writeConfig(t, dir, quickArchive(t, cfg)+fmt.Sprintf("admin: {address: %s}\n", adminAddr))
	for k, v := range map[string]string{
		"VIGIL_DATA_DIR": filepath.Join(dir, "data"), "HTTP_ADDRESS": httpAddr, "INTAKE_TOKEN": "seed-000-intake",
		"SYSLOG_TCP_ADDRESS": syslogAddr, "KINESIS_STREAM": "telemetry", "KINESIS_ENDPOINT": kl.Endpoint(),
		"SPLUNK_HEC_URL": hec.URL(), "SPLUNK_HEC_TOKEN": "seed-000-hec-token",
		"ARCHIVE_BUCKET": testutil.S3Bucket, "S3_ENDPOINT": gw.Endpoint(),
		"AWS_ACCESS_KEY_ID": testutil.S3AccessKey, "AWS_SECRET_ACCESS_KEY": testutil.S3Secret, "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	p := startVigil(t, adminAddr, "-c", cfgPath)
	defer func() {
		if !t.Failed() {
			return
		}
		p.kill()
		t.Logf("vigil output:\n%s", p.out.String())
	}()

	// HTTP: NDJSON in batches of 10, bearer token.
	for b := range perIntake / 10 {
		var body bytes.Buffer
		for i := range 10 {
			tid := fmt.Sprintf("h%d", b*10+i)
			want[tid] = true
			fmt.Fprintf(&body, "{\"tid\":%q,\"message\":\"from an app\"}\n", tid)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/v1/events/events", &body)
		req.Header.Set("Authorization", "Bearer seed-000-intake")
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("http intake: %d", resp.StatusCode)
		}
	}
	// Syslog over TCP: one logger connection, one message per line of its input.
	host, port, _ := strings.Cut(syslogAddr, ":")
	var lines strings.Builder
	for i := range perIntake {
		tid := fmt.Sprintf("s%d", i)
		want[tid] = true
		fmt.Fprintf(&lines, "tid=%s sshd login accepted\n", tid)
	}
	cmd := exec.Command(logger, "--server", host, "--port", port, "--tcp", "--rfc5424", "-t", "sshd", "-p", "auth.info")
	cmd.Stdin = strings.NewReader(lines.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logger: %v: %s", err, out)
	}

	// tidOf names the test record an event came from.
	syslogTid := regexp.MustCompile(`\btid=(s\d+)\b`)
	tidOf := func(d map[string]any) string {
		if tid, ok := d["tid"].(string); ok {
			return tid
		}
		if m := syslogTid.FindStringSubmatch(fmt.Sprint(d["message"])); m != nil {
			return m[1]
		}
		return ""
	}
	type tally struct {
		byTid map[string]map[string]bool // tid -> event.ids
		ids   map[string]int             // event.id -> copies
	}
	count := func(docs []map[string]any) tally {
		tl := tally{byTid: map[string]map[string]bool{}, ids: map[string]int{}}
		for _, d := range docs {
			tid := tidOf(d)
			if tid == "" {
				continue
			}
			id := fmt.Sprint(testutil.Field(d, "event.id"))
			tl.ids[id]++
			if tl.byTid[tid] == nil {
				tl.byTid[tid] = map[string]bool{}
			}
			tl.byTid[tid][id] = true
		}
		return tl
	}
	complete := func(tl tally) bool {
		for tid := range want {
			if len(tl.byTid[tid]) == 0 {
				return false
			}
		}
		return true
	}
	var archive, splunk tally
	deadline := time.Now().Add(100 * time.Second) // quickArchive: objects close after 3 s; a loaded machine needs the margin
	for {
		archive, splunk = count(gw.NDJSONDocs(t)), count(hec.Events())
		if complete(archive) && complete(splunk) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 100 s: %d of %d records in the archive, %d in Splunk", len(archive.byTid), len(want), len(splunk.byTid))
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate would be delivered by now
	archive, splunk = count(gw.NDJSONDocs(t)), count(hec.Events())

	// The archive: every record exactly once, one event.id each, no stray tid.
	if len(archive.byTid) != len(want) {
		t.Errorf("archive has %d distinct records, want %d", len(archive.byTid), len(want))
	}
	for tid, ids := range archive.byTid {
		if !want[tid] || len(ids) != 1 {
			t.Errorf("record %s archived under event ids %v, want one", tid, ids)
		}
	}
	for id, n := range archive.ids {
		if n != 1 {
			t.Errorf("event %s archived %d times, want once", id, n)
		}
	}
	// Splunk: at-least-once, so every record under the same event.id as archived.
	if len(splunk.byTid) != len(want) {
		t.Errorf("Splunk has %d distinct records, want %d", len(splunk.byTid), len(want))
	}
	for tid, ids := range splunk.byTid {
		if len(ids) != 1 || !sameKeys(ids, archive.byTid[tid]) {
			t.Errorf("record %s in Splunk under event ids %v, archived under %v", tid, ids, archive.byTid[tid])
		}
	}
	// Syslog events were parsed: the sender's app name is the tag logger was given.
	for _, d := range gw.NDJSONDocs(t) {
		tid := tidOf(d)
		if strings.HasPrefix(tid, "s") && testutil.Field(d, "log.syslog.appname") != "sshd" {
			t.Errorf("syslog record %s: appname %v, want sshd", tid, testutil.Field(d, "log.syslog.appname"))
		}
	}
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
