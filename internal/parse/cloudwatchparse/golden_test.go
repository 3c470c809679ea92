package cloudwatchparse

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/cloudtrailparse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
)

func newParser() parse.Parser { return New(NewConfig(), nil) }

// lookup offers the cloudtrail format as an inner format.
func lookup(name string) (parse.Format, bool) {
	if name == "cloudtrail" {
		return cloudtrailparse.Format(), true
	}
	return parse.Format{}, false
}

func newInnerParser(t testing.TB) parse.Parser {
	t.Helper()
	f := NewFormat(lookup)
	cfg := f.NewConfig()
	cfg.(*Config).MessageFormat = "cloudtrail"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := f.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGolden(t *testing.T) {
	parsetest.Golden(t, "testdata", parsetest.WholeFile, newParser)
}

func TestGoldenInnerFormat(t *testing.T) {
	parsetest.Golden(t, "testdata/inner", parsetest.WholeFile, func() parse.Parser { return newInnerParser(t) })
}

// meta records what golden documents do not show: event time, ID and dataset.
type meta struct {
	parsetest.Collector
	got []string
}

func (m *meta) Emit(e *event.Event) error {
	m.got = append(m.got, string(event.AppendTimestamp(nil, e.Time))+" "+e.ID+" "+e.Dataset)
	return m.Collector.Emit(e)
}

func TestTimeIDDataset(t *testing.T) {
	in := `{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[` +
		`{"id":"a","timestamp":1700000000123,"message":"x"},{"timestamp":0,"message":"y"}]}`
	var m meta
	if err := newParser().Parse([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	want := "2023-11-14T22:13:20.123Z a aws.cloudwatch_logs|1970-01-01T00:00:00Z  aws.cloudwatch_logs"
	if got := strings.Join(m.got, "|"); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// Inner CloudTrail events keep their own time, ID and dataset.
	in = `{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[` +
		`{"id":"cw1","timestamp":1700000000123,"message":"{\"eventTime\":\"2020-01-01T00:00:00Z\",\"eventID\":\"ct1\"}"},` +
		`{"id":"cw2","timestamp":1700000000124,"message":"{\"eventTime\":\"2020-01-01T00:00:01Z\"}"}]}`
	m = meta{}
	if err := newInnerParser(t).Parse([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	want = "2020-01-01T00:00:00Z ct1 aws.cloudtrail|2020-01-01T00:00:01Z cw2 aws.cloudtrail"
	if got := strings.Join(m.got, "|"); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestDecompressionLimit(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[]`))
	zw.Write(bytes.Repeat([]byte(" "), 1<<20))
	zw.Write([]byte(`}`))
	zw.Close()
	cfg := NewConfig()
	cfg.MaxDecompressedBytes = 64 << 10
	var c parsetest.Collector
	err := New(cfg, nil).Parse(buf.Bytes(), &c)
	if err == nil || !strings.Contains(err.Error(), "max_decompressed_bytes") {
		t.Fatalf("err = %v, want a max_decompressed_bytes error", err)
	}
	// The same bomb inside a Lambda envelope.
	env := `{"awslogs":{"data":"` + base64Std(buf.Bytes()) + `"}}`
	err = New(cfg, nil).Parse([]byte(env), &c)
	if err == nil || !strings.Contains(err.Error(), "max_decompressed_bytes") {
		t.Fatalf("envelope: err = %v, want a max_decompressed_bytes error", err)
	}
	// Members of a Firehose object count together: two members of 40 KiB each pass
	// alone but not back to back.
	var member bytes.Buffer
	zw = gzip.NewWriter(&member)
	zw.Write([]byte(`{"messageType":"CONTROL_MESSAGE","logEvents":[]` + strings.Repeat(" ", 40<<10) + `}`))
	zw.Close()
	if err := New(cfg, nil).Parse(member.Bytes(), &c); err != nil {
		t.Fatalf("one member: %v", err)
	}
	two := append(append([]byte(nil), member.Bytes()...), member.Bytes()...)
	if err := New(cfg, nil).Parse(two, &c); err == nil || !strings.Contains(err.Error(), "max_decompressed_bytes") {
		t.Fatalf("two members: err = %v, want a max_decompressed_bytes error", err)
	}
	cfg.MaxDecompressedBytes = 2 << 20
	p := New(cfg, nil)
	for range 2 {
		if err := p.Parse(buf.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
	}
}

type failingEmitter struct{ parsetest.Collector }

var errSink = errors.New("sink full")

func (failingEmitter) Emit(*event.Event) error { return errSink }

func TestEmitErrorReturnedUnchanged(t *testing.T) {
	payload := `{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"a","timestamp":1,"message":"{\"eventTime\":\"2020-01-01T00:00:00Z\"}"}]}`
	kinesis := `{"Records":[{"kinesis":{"data":"` + base64Std([]byte(payload)) + `"}}]}`
	firehose := `{"invocationId":"i","records":[{"recordId":"r","data":"` + base64Std([]byte(payload)) + `"}]}`
	concatenated := payload + payload
	for _, p := range []parse.Parser{newParser(), newInnerParser(t)} {
		for _, in := range []string{payload, kinesis, firehose, concatenated, kinesis + firehose} {
			if err := p.Parse([]byte(in), &failingEmitter{}); err != errSink {
				t.Errorf("err = %v, want the emitter's error unchanged", err)
			}
		}
	}
}

func TestConfig(t *testing.T) {
	cfg := NewConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.MessageFormat = Name
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "message_format") {
		t.Fatalf("err = %v", err)
	}
	cfg = NewConfig()
	cfg.MaxDecompressedBytes = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_decompressed_bytes") {
		t.Fatalf("err = %v", err)
	}
	cfg = NewConfig()
	cfg.MessageFormat = "nope"
	if _, err := NewFormat(lookup).New(cfg); err == nil || !strings.Contains(err.Error(), "message_format") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Format().New(parse.NoConfig{}); err == nil {
		t.Fatal("wrong config type accepted")
	}
}
