package kinesissource_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestCloudWatchLogs reads what a CloudWatch Logs subscription filter puts into a
// stream — one gzip JSON payload per record, several log events each — with the
// default format, cloudwatch_logs: one event per log event.
func TestCloudWatchLogs(t *testing.T) {
	m := testutil.StartMoto(t)
	s := newStream(t, m.Endpoint(), "cwl", 2)
	const payloads, perPayload = 5, 4
	for p := range payloads {
		var events []map[string]any
		for e := range perPayload {
			events = append(events, map[string]any{"id": fmt.Sprintf("%d-%d", p, e), "timestamp": time.Now().UnixMilli(),
				"message": fmt.Sprintf("line %d of payload %d", e, p)})
		}
		body, _ := json.Marshal(map[string]any{"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/app",
			"logStream": "2026/12/07/[$LATEST]abc", "subscriptionFilters": []string{"to-kinesis"}, "logEvents": events})
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		_, _ = w.Write(body)
		_ = w.Close()
		if _, err := s.client.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(s.name),
			PartitionKey: aws.String(fmt.Sprint(p)), Data: gz.Bytes()}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cfg := nodeConfig(dir, "", s.config(nil))
	cfg.Sources[0].Format = "cloudwatch_logs"
	cfg.Sources[0].FormatOptions, _ = components.Builtin().FormatConfig("cloudwatch_logs")
	startPipeline(t, cfg)
	want := payloads * perPayload
	var docs []map[string]any
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d events archived", want), func() bool {
		docs = testutil.ArchiveDocs(t, dir+"/archive")
		return len(docs) >= want
	})
	seen := map[string]int{}
	for _, d := range testutil.ArchiveDocs(t, dir+"/archive") {
		seen[fmt.Sprint(d["message"])]++
	}
	for p := range payloads {
		for e := range perPayload {
			if c := seen[fmt.Sprintf("line %d of payload %d", e, p)]; c != 1 {
				t.Errorf("event %d of payload %d archived %d times, want once (docs: %v)", e, p, c, docs[0])
			}
		}
	}
}
