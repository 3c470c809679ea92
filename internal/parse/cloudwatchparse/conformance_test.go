package cloudwatchparse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

// The conformance test runs the peers' subscription fixtures in ../shared/conformance/
// cloudwatch_subscription through our parser and compares each peer's expectation with
// our events, field by field, through the mapping tables below.
//
// Peer field → Vigil path (per log event):
//
//	owner                     → cloud.account.id
//	logGroup / log_group      → aws.cloudwatch.log_group
//	logStream / log_stream    → aws.cloudwatch.log_stream
//	subscriptionFilters / subscription_filters → aws.cloudwatch.subscription_filters
//	messageType / message_type → aws.cloudwatch.message_type
//	policyLevel               → aws.cloudwatch.policy_level
//	logEvents[].id / id       → event ID (e.ID, written as event.id by the pipeline)
//	logEvents[].timestamp     → event time (e.Time; epoch ms or RFC 3339, compared as instants)
//	logEvents[].message       → message
//	OTel resource cloud.provider / cloud.account.id → cloud.provider / cloud.account.id
//	OTel aws.log.group.names[0] / aws.log.stream.names[0] → aws.cloudwatch.log_group / log_stream
//	OTel body / timeUnixNano  → message / event time
var payloadMap = map[string]string{
	"owner": "cloud.account.id", "logGroup": "aws.cloudwatch.log_group", "log_group": "aws.cloudwatch.log_group",
	"logStream": "aws.cloudwatch.log_stream", "log_stream": "aws.cloudwatch.log_stream",
	"subscriptionFilters": "aws.cloudwatch.subscription_filters", "subscription_filters": "aws.cloudwatch.subscription_filters",
	"messageType": "aws.cloudwatch.message_type", "message_type": "aws.cloudwatch.message_type",
	"policyLevel": "aws.cloudwatch.policy_level",
}

// ourEvent is one event we produced, decoded, with its time and ID.
type ourEvent struct {
	doc  map[string]any
	time time.Time
	id   string
}

type capture struct {
	parsetest.Collector
	events []ourEvent
	buf    []byte
}

func (c *capture) Emit(e *event.Event) error {
	c.buf = c.Enc.Append(c.buf[:0], e)
	var doc map[string]any
	if err := json.Unmarshal(c.buf, &doc); err != nil {
		return err
	}
	c.events = append(c.events, ourEvent{doc: doc, time: e.Time, id: e.ID})
	return nil
}

func run(input []byte) (*capture, error) {
	var c capture
	err := newParser().Parse(input, &c)
	return &c, err
}

type tally struct{ equal, different, missing, allowed int }

func (tl *tally) pct() float64 {
	n := tl.equal + tl.different + tl.missing
	if n == 0 {
		return 100
	}
	return 100 * float64(tl.equal) / float64(n)
}

func (tl *tally) check(t *testing.T, where, field string, want, got any, ok bool) {
	t.Helper()
	switch {
	case !ok:
		tl.missing++
		t.Logf("%s: missing %s (peer %v)", where, field, want)
	case reflect.DeepEqual(norm(want), norm(got)):
		tl.equal++
	default:
		tl.different++
		t.Logf("%s: %s differs: peer %v, ours %v", where, field, want, got)
	}
}

func norm(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func docLookup(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, seg := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// peerTime reads a timestamp as the peers write it: epoch ms or RFC 3339.
func peerTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case float64:
		return time.UnixMilli(int64(x)).UTC(), true
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t.UTC(), err == nil
	}
	return time.Time{}, false
}

// comparePayload compares a decoded payload (camelCase or VRL snake_case) with the
// events of one payload.
func comparePayload(t *testing.T, tl *tally, where string, want map[string]any, events []ourEvent) {
	t.Helper()
	logEvents, _ := want["logEvents"].([]any)
	if logEvents == nil {
		logEvents, _ = want["log_events"].([]any)
	}
	if len(logEvents) != len(events) {
		t.Errorf("%s: peer has %d log events, we emitted %d", where, len(logEvents), len(events))
		return
	}
	for i, le := range logEvents {
		w := fmt.Sprintf("%s event %d", where, i)
		ours := events[i]
		for k, v := range want {
			if k == "logEvents" || k == "log_events" {
				continue
			}
			path, ok := payloadMap[k]
			if !ok {
				tl.missing++
				t.Logf("%s: peer field %s has no mapping", w, k)
				continue
			}
			if v == nil {
				// The peer asserts the field is absent (policyLevel None).
				_, present := docLookup(ours.doc, path)
				tl.check(t, w, path, nil, nil, !present)
				continue
			}
			got, ok := docLookup(ours.doc, path)
			tl.check(t, w, path, v, got, ok)
		}
		m := le.(map[string]any)
		tl.check(t, w, "event id", m["id"], ours.id, true)
		wt, _ := peerTime(m["timestamp"])
		tl.check(t, w, "event time", wt.Format(time.RFC3339Nano), ours.time.Format(time.RFC3339Nano), true)
		got, ok := docLookup(ours.doc, "message")
		tl.check(t, w, "message", m["message"], got, ok)
	}
}

func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the package")
		}
		dir = parent
	}
}

func readFixture(t *testing.T, dir, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

func readInput(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func mustReject(t *testing.T, what string, input []byte) {
	t.Helper()
	c, err := run(input)
	if err == nil || len(c.events) > 0 {
		t.Errorf("%s: the peer rejects this input; we returned err=%v with %d events", what, err, len(c.events))
	}
}

func mustParse(t *testing.T, what string, input []byte) *capture {
	t.Helper()
	c, err := run(input)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(c.Rejected) > 0 {
		t.Errorf("%s: rejected parts: %v", what, c.Rejected)
	}
	return c
}

func report(t *testing.T, peer string, tl tally) {
	t.Helper()
	t.Logf("conformance cloudwatch_logs vs %s: %d equal, %d different, %d missing, %d allow-listed: %.1f%% equal",
		peer, tl.equal, tl.different, tl.missing, tl.allowed, tl.pct())
	if tl.pct() < 95 {
		t.Errorf("conformance cloudwatch_logs vs %s: %.1f%% of comparable fields equal, want at least 95%%", peer, tl.pct())
	}
}

func TestConformance(t *testing.T) {
	dir := conformancetest.Shared(t, "conformance", "cloudwatch_subscription")

	t.Run("aws-lambda-go", func(t *testing.T) {
		var tl tally
		fx := readFixture(t, dir, "awslambdago_cloudwatch-logs-event.aws-lambda-go.expected.json")
		c := mustParse(t, "lambda event", readInput(t, dir, "awslambdago_cloudwatch-logs-event.json"))
		comparePayload(t, &tl, "payload", fx["expected"].(map[string]any), c.events)
		report(t, "aws/aws-lambda-go", tl)
	})

	t.Run("powertools", func(t *testing.T) {
		var tl tally
		for _, name := range []string{"powertools_cloudWatchLogEvent", "powertools_cloudWatchLogEventWithPolicyLevel"} {
			fx := readFixture(t, dir, name+".powertools.expected.json")
			c := mustParse(t, name, readInput(t, dir, name+".json"))
			comparePayload(t, &tl, name, fx["expected"].(map[string]any), c.events)
		}
		fx := readFixture(t, dir, "powertools_kinesisStreamCloudWatchLogsEvent.powertools.expected.json")
		c := mustParse(t, "kinesis", readInput(t, dir, "powertools_kinesisStreamCloudWatchLogsEvent.json"))
		n := 0
		for i, rec := range fx["expected_records"].([]any) {
			payload := rec.(map[string]any)
			k := len(payload["logEvents"].([]any))
			if n+k > len(c.events) {
				t.Fatalf("kinesis: fewer events than the peer's payloads hold")
			}
			comparePayload(t, &tl, fmt.Sprintf("kinesis record %d", i), payload, c.events[n:n+k])
			n += k
		}
		if n != len(c.events) {
			t.Errorf("kinesis: %d events, peer payloads hold %d", len(c.events), n)
		}
		inv := readFixture(t, dir, "powertools_invalid_data.powertools.expected.json")
		b, _ := json.Marshal(inv["input"])
		mustReject(t, "powertools invalid data", b)
		report(t, "aws-powertools/powertools-lambda-python", tl)
	})

	t.Run("vector", func(t *testing.T) {
		var tl tally
		c := mustParse(t, "control", readInput(t, dir, "vector_transform_control_message.json"))
		if len(c.events) != 0 || c.Skipped["control_message"] != 1 {
			t.Errorf("control message: %d events, skipped %v", len(c.events), c.Skipped)
		}
		fx := readFixture(t, dir, "vector_transform_data_message.vector.expected.json")
		c = mustParse(t, "data", readInput(t, dir, "vector_transform_data_message.json"))
		want := fx["expected_events"].([]any)
		if len(want) != len(c.events) {
			t.Fatalf("peer has %d events, we emitted %d", len(want), len(c.events))
		}
		for i, we := range want {
			m := we.(map[string]any)
			w := fmt.Sprintf("event %d", i)
			for k, v := range m {
				switch k {
				case "id":
					tl.check(t, w, "event id", v, c.events[i].id, true)
				case "timestamp":
					wt, _ := peerTime(v)
					tl.check(t, w, "event time", wt.Format(time.RFC3339Nano), c.events[i].time.Format(time.RFC3339Nano), true)
				case "message":
					got, ok := docLookup(c.events[i].doc, "message")
					tl.check(t, w, "message", v, got, ok)
				case "keep":
					// A field of the peer's input event carried through by the test
					// harness, not part of the payload.
					tl.allowed++
				default:
					got, ok := docLookup(c.events[i].doc, payloadMap[k])
					tl.check(t, w, payloadMap[k], v, got, ok)
				}
			}
		}
		report(t, "vectordotdev/vector", tl)
	})

	t.Run("vrl", func(t *testing.T) {
		var tl tally
		fx := readFixture(t, dir, "vrl_parse_aws_cloudwatch_log_subscription_message.vector.expected.json")
		lines := bytes.Split(readInput(t, dir, "vrl_parse_aws_cloudwatch_log_subscription_message.log"), []byte("\n"))
		for _, cs := range fx["cases"].([]any) {
			c := cs.(map[string]any)
			var input []byte
			if l, ok := c["line"].(float64); ok {
				input = lines[int(l)-1]
			} else {
				input = []byte(c["input"].(string))
			}
			name := c["name"].(string)
			if _, ok := c["expected_error"]; ok {
				mustReject(t, "vrl "+name, input)
				continue
			}
			got := mustParse(t, name, input)
			comparePayload(t, &tl, name, c["expected"].(map[string]any), got.events)
		}
		report(t, "vectordotdev/vrl", tl)
	})

	t.Run("otel", func(t *testing.T) {
		var tl tally
		// The peer's harness gzips the JSON files before unmarshalling them.
		c := mustParse(t, "control", gz(readInput(t, dir, "otel_valid_cloudwatch_log_control.json")))
		if len(c.events) != 0 || c.Skipped["control_message"] != 1 {
			t.Errorf("control message: %d events, skipped %v", len(c.events), c.Skipped)
		}
		mustReject(t, "otel invalid (no logGroup)", gz(readInput(t, dir, "otel_invalid_cloudwatch_log.json")))
		mustReject(t, `otel "invalid"`, []byte("invalid"))
		mustReject(t, `otel gzip("invalid")`, gz([]byte("invalid")))

		var fx struct {
			Expected struct {
				ResourceLogs []struct {
					Resource struct {
						Attributes []struct {
							Key   string         `json:"key"`
							Value map[string]any `json:"value"`
						} `json:"attributes"`
					} `json:"resource"`
					ScopeLogs []struct {
						LogRecords []struct {
							Body struct {
								StringValue string `json:"stringValue"`
							} `json:"body"`
							TimeUnixNano int64 `json:"timeUnixNano,string"`
						} `json:"logRecords"`
					} `json:"scopeLogs"`
				} `json:"resourceLogs"`
			} `json:"expected"`
		}
		b := readInput(t, dir, "otel_valid_cloudwatch_log.otel.expected.json")
		if err := json.Unmarshal(b, &fx); err != nil {
			t.Fatal(err)
		}
		c = mustParse(t, "valid", gz(readInput(t, dir, "otel_valid_cloudwatch_log.json")))
		i := 0
		for _, rl := range fx.Expected.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					if i >= len(c.events) {
						t.Fatalf("peer has more records than our %d events", len(c.events))
					}
					ours := c.events[i]
					w := fmt.Sprintf("record %d", i)
					for _, a := range rl.Resource.Attributes {
						var want any = a.Value["stringValue"]
						path := map[string]string{
							"cloud.provider": "cloud.provider", "cloud.account.id": "cloud.account.id",
							"aws.log.group.names": "aws.cloudwatch.log_group", "aws.log.stream.names": "aws.cloudwatch.log_stream",
						}[a.Key]
						if arr, ok := a.Value["arrayValue"].(map[string]any); ok {
							// One payload has one group and stream; the peer lists them.
							want = arr["values"].([]any)[0].(map[string]any)["stringValue"]
						}
						got, ok := docLookup(ours.doc, path)
						tl.check(t, w, path, want, got, ok)
					}
					got, ok := docLookup(ours.doc, "message")
					tl.check(t, w, "message", lr.Body.StringValue, got, ok)
					tl.check(t, w, "event time", time.Unix(0, lr.TimeUnixNano).UTC().String(), ours.time.String(), true)
					i++
				}
			}
		}
		if i != len(c.events) {
			t.Errorf("peer has %d records, we emitted %d events", i, len(c.events))
		}
		report(t, "open-telemetry/opentelemetry-collector-contrib", tl)
	})
}
