package firehosesource_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/firehosesource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// registry is the built-in registry plus the firehose source, as
// internal/components will list it.
func registry() *components.Registry {
	reg := components.Builtin()
	reg.Sources["firehose"] = components.SourceFactory{
		NewConfig: func() config.Component { return firehosesource.NewConfig() },
		New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
			return firehosesource.New(c.(*firehosesource.Config), d), nil
		},
	}
	return reg
}

// startPipeline runs a pipeline with one firehose source "cloudwatch" (format
// cloudwatch_logs) and, unless ingestOnly, a file archive; it returns the endpoint URL.
func startPipeline(t testing.TB, dir string, ingestOnly bool) (*pipeline.Pipeline, string) {
	t.Helper()
	reg := registry()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	cfg.Buffer.AckWait = 5 * time.Second
	fh := firehosesource.NewConfig()
	fh.Address = "127.0.0.1:0"
	fh.AccessKeys = []string{"e2e-key"}
	fh.Path = "/firehose"
	opts, _ := reg.FormatConfig("cloudwatch_logs")
	cfg.Sources = []*config.Source{{Name: "cloudwatch", Type: "firehose", Format: "cloudwatch_logs", FormatOptions: opts, KeepOriginal: true, Settings: fh}}
	if ingestOnly {
		cfg.Role = config.RoleIngest
	} else {
		a := archivesink.NewConfig()
		a.MaxAge = 200 * time.Millisecond
		cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.DiscardHandler), Registry: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p, "http://" + p.Sources()["cloudwatch"].(*firehosesource.Source).Addr() + "/firehose"
}

// subscriptionRecord is a Firehose record as CloudWatch Logs writes it into a
// Firehose stream: the gzip-compressed subscription payload.
func subscriptionRecord(t testing.TB, file string) []byte {
	t.Helper()
	// Real payloads from other projects' tests, read from ../shared in place.
	raw, err := os.ReadFile(filepath.Join(conformancetest.Shared(t, "conformance", "cloudwatch_subscription"), file))
	if err != nil {
		t.Fatal(err)
	}
	var lambda struct {
		Awslogs struct {
			Data string `json:"data"`
		} `json:"awslogs"`
	}
	if json.Unmarshal(raw, &lambda) == nil && lambda.Awslogs.Data != "" {
		// A Lambda event: its data is the same gzip payload, base64-encoded.
		rec, err := base64.StdEncoding.DecodeString(lambda.Awslogs.Data)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	return buf.Bytes()
}

func firehoseRequest(t testing.TB, url, id string, records [][]byte, gz bool) *http.Request {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"requestId":%q,"timestamp":%d,"records":[`, id, time.Now().UnixMilli())
	for i, r := range records {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"data":"%s"}`, base64.StdEncoding.EncodeToString(r))
	}
	b.WriteString("]}")
	body := b.Bytes()
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = z.Bytes()
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(firehosesource.HeaderProtocolVersion, "1.0")
	req.Header.Set(firehosesource.HeaderRequestID, id)
	req.Header.Set(firehosesource.HeaderSourceArn, "arn:aws:firehose:eu-west-1:123456789012:deliverystream/cwl")
	req.Header.Set(firehosesource.HeaderAccessKey, "e2e-key")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	return req
}

func send(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestCloudWatchThroughFirehose delivers real CloudWatch Logs subscription payloads
// as Firehose does (gzip records, gzip body) through a real pipeline and reads the
// events back from the archive.
func TestCloudWatchThroughFirehose(t *testing.T) {
	dir := t.TempDir()
	p, url := startPipeline(t, dir, false)
	records := [][]byte{
		subscriptionRecord(t, "awslambdago_cloudwatch-logs-event.json"), // 2 events
		subscriptionRecord(t, "otel_valid_cloudwatch_log_control.json"), // skipped
		subscriptionRecord(t, "otel_valid_cloudwatch_log.json"),         // 3 events
		[]byte("this is not a subscription payload"),                    // dead-lettered
	}
	code, body := send(t, firehoseRequest(t, url, "cwl-1", records, true))
	if code != 200 || !strings.Contains(body, `"requestId":"cwl-1"`) || strings.Contains(body, "errorMessage") {
		t.Fatalf("got %d %s", code, body)
	}
	var docs []map[string]any
	testutil.Eventually(t, 20*time.Second, "5 events in the archive", func() bool {
		docs = testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))
		return len(docs) >= 5
	})
	if len(docs) != 5 {
		t.Fatalf("%d documents, want 5", len(docs))
	}
	var got []string
	for _, d := range docs {
		got = append(got, fmt.Sprintf("%v|%v|%v|%v|%v", testutil.Field(d, "event.id"), d["message"],
			testutil.Field(d, "aws.cloudwatch.log_group"), testutil.Field(d, "cloud.account.id"), testutil.Field(d, "event.dataset")))
	}
	sort.Strings(got)
	want := []string{
		`31953106606966983378809025079804211143289615424298221568|{"eventVersion":"1.03","userIdentity":{"type":"Root"}|CloudTrail|123456789012|aws.cloudwatch_logs`,
		`31953106606966983378809025079804211143289615424298221569|{"eventVersion":"1.03","userIdentity":{"type":"Root"}|CloudTrail|123456789012|aws.cloudwatch_logs`,
		`31953106606966983378809025079804211143289615424298221570|{"eventVersion":"1.03","userIdentity":{"type":"Root"}|CloudTrail|123456789012|aws.cloudwatch_logs`,
		`eventId1|[ERROR] First test message|testLogGroup|123456789123|aws.cloudwatch_logs`,
		`eventId2|[ERROR] Second test message|testLogGroup|123456789123|aws.cloudwatch_logs`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("archived:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := counter(t, p, "vigil_dead_lettered_total"); n != 1 {
		t.Errorf("dead-lettered %v, want 1 (the record that is no subscription payload)", n)
	}
	for _, d := range docs {
		if testutil.Field(d, "@timestamp") == nil || testutil.Field(d, "aws.cloudwatch.log_stream") == nil {
			t.Errorf("fields missing: %v", d)
		}
	}

	// A delivery under the same request ID with other records (not a retry) is
	// stored; the CloudWatch event IDs stay the same, so an indexer keyed on event.id
	// keeps one.
	code, body = send(t, firehoseRequest(t, url, "cwl-1", records[:1], false))
	if code != 200 {
		t.Fatalf("retry: %d %s", code, body)
	}
	testutil.Eventually(t, 20*time.Second, "the retried events in the archive", func() bool {
		return len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))) >= 7
	})
	ids := map[string]int{}
	for _, d := range testutil.ArchiveDocs(t, filepath.Join(dir, "archive")) {
		ids[fmt.Sprint(testutil.Field(d, "event.id"))]++
	}
	if ids["eventId1"] != 2 || ids["eventId2"] != 2 || len(ids) != 5 {
		t.Errorf("event ids after the retry: %v", ids)
	}

	// A retry of the first request itself (as after a lost answer): the same
	// request ID and records make the same unit ID, and the stream drops it. Another
	// request after it shows when the retry would have been archived.
	code, body = send(t, firehoseRequest(t, url, "cwl-1", records, true))
	if code != 200 {
		t.Fatalf("retry: %d %s", code, body)
	}
	code, body = send(t, firehoseRequest(t, url, "cwl-2", records[2:3], false))
	if code != 200 {
		t.Fatalf("next request: %d %s", code, body)
	}
	testutil.Eventually(t, 20*time.Second, "the next request's events in the archive", func() bool {
		return len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))) >= 10
	})
	time.Sleep(time.Second) // a stored retry would be archived by now
	if n := len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))); n != 10 {
		t.Errorf("%d documents after an exact retry and 3 more events, want 10: the retry was stored again", n)
	}
}

// counter sums a counter family over all its labels.
func counter(t testing.TB, p *pipeline.Pipeline, name string) float64 {
	t.Helper()
	mfs, err := p.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
