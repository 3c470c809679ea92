package process_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse/cloudtrailparse"
	"github.com/vigil-sec/vigil/internal/parse/syslogparse"
	"github.com/vigil-sec/vigil/internal/process"
)

// The processing stage's per-event path: parse, normalize, (processors,) encode.
// BenchmarkNormalize runs it without a chain, the path every version has, so the
// figure can be compared across versions in one run (see docs/performance.md).

type benchInput struct {
	name    string
	records [][]byte
	norm    func(b *testing.B) *process.Normalizer
}

func benchInputs(b *testing.B) []benchInput {
	var syslog [][]byte
	for i := range 400 {
		var line string
		switch i % 4 {
		case 0:
			line = fmt.Sprintf("<165>1 2024-01-05T12:00:%02d.%06dZ web%02d.example.com nginx %d ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"%d\"] GET /index.html 200 from 198.51.100.%d", i%60, i*7, i%10, 1000+i, i, i%250)
		case 1:
			line = fmt.Sprintf("<86>Jan  5 12:00:%02d bastion sshd[%d]: Accepted publickey for deploy from 203.0.113.%d port %d ssh2: ED25519 SHA256:Xk3r9v0aZbqLxX2Lr5sO8c0Q", i%60, 2000+i, i%250, 40000+i)
		case 2:
			line = fmt.Sprintf("<85>Jan  5 12:00:%02d ip-172-31-30-110 sudo[%d]: ec2-user : TTY=pts/0 ; PWD=/var/log ; USER=root ; COMMAND=/bin/tail secure", i%60, 6000+i)
		default:
			line = fmt.Sprintf("<14>1 2024-01-05T12:00:%02d+01:00 app-%d.internal payments %d - - request completed in %dms status=ok user=u%d", i%60, i%7, 300+i, i%90, i)
		}
		syslog = append(syslog, []byte(line))
	}
	var trails [][]byte
	for _, name := range []string{"single_record", "stratus_console_login", "stratus_iam_create_admin_user",
		"assumed_role_web_identity", "escapes_and_addresses", "otel_log_file"} {
		data, err := os.ReadFile(filepath.Join("..", "parse", "cloudtrailparse", "testdata", name, "input.log"))
		if err != nil {
			b.Fatal(err)
		}
		for range 20 {
			trails = append(trails, data)
		}
	}
	return []benchInput{
		{"syslog", syslog, func(b *testing.B) *process.Normalizer {
			p, err := syslogparse.Format().New(syslogparse.Format().NewConfig())
			if err != nil {
				b.Fatal(err)
			}
			return &process.Normalizer{Source: "bench", FormatDataset: "syslog", KeepOriginal: true, Parser: p, AgentName: "bench", AgentVersion: "1"}
		}},
		{"cloudtrail", trails, func(b *testing.B) *process.Normalizer {
			f := cloudtrailparse.Format()
			p, err := f.New(f.NewConfig())
			if err != nil {
				b.Fatal(err)
			}
			return &process.Normalizer{Source: "bench", FormatDataset: f.Dataset, KeepOriginal: true, Parser: p, AgentName: "bench", AgentVersion: "1"}
		}},
	}
}

// discard is a process.Output that counts.
type discard struct{ events, bytes, rejects int }

func (d *discard) Event(_ string, doc []byte) error { d.events++; d.bytes += len(doc); return nil }
func (d *discard) Reject(int, []byte, error)        { d.rejects++ }
func (d *discard) Skip(string)                      {}

func runNormalize(b *testing.B, n *process.Normalizer, records [][]byte) {
	out := &discard{}
	recv := time.Unix(1700000000, 0)
	run := func() {
		for i, rec := range records {
			if _, err := n.Process(process.Record{Data: rec, Origin: event.Origin{Epoch: 1, Seq: 7, Index: uint32(i)}, Received: recv}, out); err != nil {
				b.Fatal(err)
			}
		}
	}
	run()
	if out.events == 0 || out.rejects > 0 {
		b.Fatalf("%d events, %d rejected", out.events, out.rejects)
	}
	perRun := out.events
	size := 0
	for _, r := range records {
		size += len(r)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.ReportMetric(float64(perRun)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(testing.AllocsPerRun(1, run))/float64(perRun), "allocs/event")
}

func BenchmarkNormalize(b *testing.B) {
	for _, in := range benchInputs(b) {
		b.Run(in.name, func(b *testing.B) { runNormalize(b, in.norm(b), in.records) })
	}
}
