package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestSeed003 runs examples/seed-003-csoc.yaml as it is shipped, with its variables
// pointing at test servers: CloudWatch Logs subscription payloads delivered by Firehose
// reach the Elasticsearch-compatible store (VictoriaLogs) and the S3 archive
// (versitygw), and slow responses raise one alert that arrives in Slack (a local server
// that follows Slack's incoming-webhook contract).
//
// The Kinesis path runs for real on moto: a log group with a subscription filter
// whose destination is a Kinesis stream, PutLogEvents, and moto writes the
// subscription records (gzip of the DATA_MESSAGE JSON) to the stream, which the
// seed's kinesis source reads. Every log event reaches both stores exactly once.
func TestSeed003(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil, VictoriaLogs and versitygw as processes; skipped with -short")
	}
	vl := testutil.StartVictoriaLogs(t)
	gw := testutil.StartS3Gateway(t)
	moto := testutil.StartMoto(t)
	// The CSOC account's stream, and a commons account's log group subscribed to it.
	kc := kinesisClient(moto.Endpoint())
	createStream(t, kc, "central-logs", 2)
	stream, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("central-logs")})
	if err != nil {
		t.Fatal(err)
	}
	logs := cloudwatchlogs.New(cloudwatchlogs.Options{Region: "us-east-1", BaseEndpoint: aws.String(moto.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	ctx := context.Background()
	if _, err := logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/commons/api")}); err != nil {
		t.Fatal(err)
	}
	for _, ls := range []string{"vm-1", "vm-2"} {
		if _, err := logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("/commons/api"), LogStreamName: aws.String(ls)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := logs.PutSubscriptionFilter(ctx, &cloudwatchlogs.PutSubscriptionFilterInput{LogGroupName: aws.String("/commons/api"),
		FilterName: aws.String("csoc"), FilterPattern: aws.String(""), DestinationArn: stream.StreamDescriptionSummary.StreamARN,
		RoleArn: aws.String("arn:aws:iam::" + testutil.MotoAccount + ":role/CWLtoKinesisRole")}); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		alerts []map[string]any
	)
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg map[string]any
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &msg) != nil || msg["text"] == nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "invalid_payload")
			return
		}
		mu.Lock()
		alerts = append(alerts, msg)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	defer slack.Close()

	dir := t.TempDir()
	firehoseAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg, err := os.ReadFile(filepath.Join("..", "examples", "seed-003-csoc.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The shipped file, plus a loopback admin address for startVigil.
	cfgPath := writeConfig(t, dir, quickArchive(t, string(cfg))+fmt.Sprintf("admin: {address: %s}\n", adminAddr))
	for k, v := range map[string]string{
		"VIGIL_DATA_DIR": filepath.Join(dir, "data"), "FIREHOSE_ADDRESS": firehoseAddr,
		"FIREHOSE_ACCESS_KEY": "seed-003-firehose-key", "ES_URL": vl.BulkURL(),
		"ARCHIVE_BUCKET": testutil.S3Bucket, "S3_ENDPOINT": gw.Endpoint(), "SLACK_WEBHOOK_URL": slack.URL + "/services/T0/B0/x",
		"KINESIS_STREAM": "central-logs", "KINESIS_ENDPOINT": moto.Endpoint(),
		"AWS_ACCESS_KEY_ID": testutil.S3AccessKey, "AWS_SECRET_ACCESS_KEY": testutil.S3Secret, "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	p := startVigil(t, adminAddr, "-c", cfgPath)

	// Two commons accounts' log groups: fast.example answers in 0.2 s, slow.example
	// in 2.5–3.4 s (its p95 is above 2 s).
	now := time.Now().UnixMilli()
	var records []map[string]string
	want := 0
	for acct, domain := range map[string]string{"111111111111": "fast.example", "222222222222": "slow.example"} {
		var events []map[string]any
		for i := range 10 {
			rt := 0.2
			if domain == "slow.example" {
				rt = 2.5 + float64(i)/10
			}
			msg, _ := json.Marshal(map[string]any{"url": map[string]any{"domain": domain}, "http": map[string]any{"response": map[string]any{"time": rt}}})
			events = append(events, map[string]any{"id": fmt.Sprintf("%s-%d", acct, i), "timestamp": now + int64(i), "message": string(msg)})
		}
		want += len(events)
		payload, _ := json.Marshal(map[string]any{"messageType": "DATA_MESSAGE", "owner": acct, "logGroup": "/commons/app",
			"logStream": "vm-1", "subscriptionFilters": []string{"csoc"}, "logEvents": events})
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(payload)
		_ = zw.Close()
		records = append(records, map[string]string{"data": base64.StdEncoding.EncodeToString(gz.Bytes())})
	}
	body, _ := json.Marshal(map[string]any{"requestId": "seed-003", "timestamp": now, "records": records})
	req, _ := http.NewRequest(http.MethodPost, "http://"+firehoseAddr+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amz-Firehose-Access-Key", "seed-003-firehose-key")
	req.Header.Set("X-Amz-Firehose-Request-Id", "seed-003")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("firehose: %d %s", resp.StatusCode, answer)
	}
	// The API's log events, fast responses of api.example, written to CloudWatch
	// Logs: moto sends them through the subscription filter into the stream.
	wantStream := map[string]bool{}
	for _, ls := range []string{"vm-1", "vm-2"} {
		for call := range 3 {
			var evs []cwtypes.InputLogEvent
			for i := range 5 {
				tid := fmt.Sprintf("%s-%d-%d", ls, call, i)
				wantStream[tid] = true
				msg, _ := json.Marshal(map[string]any{"tid": tid, "url": map[string]any{"domain": "api.example"}, "http": map[string]any{"response": map[string]any{"time": 0.1}}})
				evs = append(evs, cwtypes.InputLogEvent{Timestamp: aws.Int64(now + int64(i)), Message: aws.String(string(msg))})
			}
			if _, err := logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("/commons/api"), LogStreamName: aws.String(ls), LogEvents: evs}); err != nil {
				t.Fatal(err)
			}
		}
	}

	testutil.Eventually(t, 60*time.Second, "the slow-responses alert in Slack", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(alerts) > 0
	})
	var n, inS3 int
	var streamS3, streamES map[string]int
	deadline := time.Now().Add(100 * time.Second) // quickArchive: objects close after 3 s; a loaded machine needs the margin
	for {
		ids := vl.CountByID(t)
		inS3 = 0
		for _, d := range gw.NDJSONDocs(t) {
			if testutil.Field(d, "event.dataset") == "aws.cloudwatch_logs" {
				inS3++
			}
		}
		n = 0
		for id := range ids {
			if strings.HasPrefix(id, "111111111111-") || strings.HasPrefix(id, "222222222222-") {
				n++
			}
		}
		streamS3, streamES = countStream(gw.NDJSONDocs(t), "/commons/api"), countStreamRows(vl.Rows(t), "/commons/api")
		if n == want && inS3 == want+len(wantStream) && len(streamS3) == len(wantStream) && len(streamES) == len(wantStream) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 100 s: %d of %d log events in the search store (ids %v), %d in the archive; through Kinesis %d of %d in the search store, %d in the archive",
				n, want, ids, inS3, len(streamES), len(wantStream), len(streamS3))
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a second alert for the same window would have come by now
	// Through Kinesis: every log event once in each store, with the subscription's
	// metadata (moto's account owns the log group).
	streamS3, streamES = countStream(gw.NDJSONDocs(t), "/commons/api"), countStreamRows(vl.Rows(t), "/commons/api")
	for tid := range wantStream {
		if streamS3[tid] != 1 || streamES[tid] != 1 {
			t.Errorf("log event %s through Kinesis: %d in the archive, %d in the search store; want 1 and 1", tid, streamS3[tid], streamES[tid])
		}
	}
	if len(streamS3) != len(wantStream) || len(streamES) != len(wantStream) {
		t.Errorf("through Kinesis: %d distinct in the archive, %d in the search store, want %d", len(streamS3), len(streamES), len(wantStream))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(alerts) != 1 || !strings.Contains(fmt.Sprint(alerts[0]), "slow-responses") || !strings.Contains(fmt.Sprint(alerts[0]), "slow.example") {
		t.Fatalf("want one slow-responses alert about slow.example in Slack, got %d: %v", len(alerts), alerts)
	}
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// countStream counts the archived events of a log group by their message's tid,
// checking they carry the subscription's metadata.
func countStream(docs []map[string]any, group string) map[string]int {
	out := map[string]int{}
	for _, d := range docs {
		if testutil.Field(d, "aws.cloudwatch.log_group") != group || testutil.Field(d, "event.dataset") != "aws.cloudwatch_logs" ||
			testutil.Field(d, "cloud.account.id") != testutil.MotoAccount {
			continue
		}
		out[fmt.Sprint(d["tid"])]++
	}
	return out
}

// countStreamRows is countStream for the search store's flattened rows.
func countStreamRows(rows []map[string]string, group string) map[string]int {
	out := map[string]int{}
	for _, r := range rows {
		if r["aws.cloudwatch.log_group"] != group || r["event.dataset"] != "aws.cloudwatch_logs" || r["cloud.account.id"] != testutil.MotoAccount {
			continue
		}
		out[r["tid"]]++
	}
	return out
}
