package kinesissource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/kinesissource"
	"github.com/vigil-sec/vigil/internal/testutil"
	"github.com/vigil-sec/vigil/internal/testutil/kinesisefo"
)

// benchRecord is a ~200-byte JSON record.
func benchRecord(i int) []byte {
	return fmt.Appendf(nil, `{"tid":"r%d","@timestamp":"2026-12-07T12:00:00Z","event":{"action":"login"},"user":{"name":"alice"},"message":"%0120d"}`, i, i)
}

// BenchmarkKinesisToIntake measures the kinesis source draining a backlog of b.N
// records (~200 bytes each, spread evenly over the shards) into the intake stream
// of an ingest-only node (embedded JetStream, sync always), from the node's start
// to the last record stored: polling GetRecords (max_records 1000, the default)
// against kinesalite and moto, and enhanced fan-out against the kinesisefo test
// server (in process, so it bounds Vigil rather than an emulator). Run with a fixed
// count, e.g. -benchtime 20000x: the records are put before the timer starts.
func BenchmarkKinesisToIntake(b *testing.B) {
	streams := 0 // each run gets a fresh stream
	for _, emu := range []string{"kinesalite", "moto", "efo"} {
		b.Run(emu, func(b *testing.B) {
			var put func(b *testing.B, name string, shards, n int) *kinesissource.Config
			switch emu {
			case "kinesalite", "moto":
				var endpoint string
				if emu == "kinesalite" {
					endpoint = testutil.StartKinesalite(b).Endpoint()
				} else {
					endpoint = testutil.StartMoto(b).Endpoint()
				}
				put = func(b *testing.B, name string, shards, n int) *kinesissource.Config {
					s := newStream(b, endpoint, name, int32(shards))
					for i := 0; i < n; i += 500 {
						var entries []types.PutRecordsRequestEntry
						for j := i; j < min(i+500, n); j++ {
							entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", j)), Data: benchRecord(j)})
						}
						out, err := s.client.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
						if err != nil || aws.ToInt32(out.FailedRecordCount) > 0 {
							b.Fatalf("put: %v %v", err, out)
						}
					}
					return s.config(nil) // max_records: the default, 1000
				}
			case "efo":
				srv := kinesisefo.Start(b)
				srv.ActivateAfter = 0
				b.Setenv("AWS_CA_BUNDLE", srv.CAFile())
				put = func(b *testing.B, name string, shards, n int) *kinesissource.Config {
					srv.CreateStream(name, shards)
					for j := range n {
						srv.Put(name, fmt.Sprintf("k%d", j), benchRecord(j))
					}
					c := efoConfig(srv, name)
					return c
				}
			}
			for _, shards := range []int{1, 4} {
				b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
					streams++
					name := fmt.Sprintf("bench-%d", streams)
					src := put(b, name, shards, b.N)
					src.PollInterval = 50 * time.Millisecond
					src.ShardSyncInterval = 200 * time.Millisecond
					src.LeaseTTL = 10 * time.Second
					cfg := config.Defaults()
					cfg.DataDir = b.TempDir()
					cfg.Admin.Address = ""
					cfg.Role = config.RoleIngest
					opts, _ := components.Builtin().FormatConfig("json")
					cfg.Sources = []*config.Source{{Name: "central", Type: "kinesis", Format: "json", FormatOptions: opts, Settings: src}}
					if err := cfg.Validate(); err != nil {
						b.Fatal(err)
					}
					p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test", Registry: components.Builtin()})
					if err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(len(benchRecord(0))))
					b.ReportAllocs()
					b.ResetTimer()
					start, cpu0 := time.Now(), cpuTime(b)
					if err := p.Start(context.Background()); err != nil {
						b.Fatal(err)
					}
					// The first stored page ends the start-up (JetStream, consumer, leases);
					// from there on the rate is the drain's.
					var first time.Time
					for deadline := start.Add(10 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
						n := stored(b, p)
						if n > 0 && first.IsZero() {
							first = time.Now()
						}
						if n >= float64(b.N) {
							break
						}
						if time.Now().After(deadline) {
							b.Fatalf("stored %v of %d records in 10 minutes", n, b.N)
						}
					}
					elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
					b.StopTimer()
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					_ = p.Stop(ctx)
					if got := stored(b, p); got != float64(b.N) {
						b.Fatalf("stored %v records, want %d", got, b.N)
					}
					b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
					b.ReportMetric(float64(b.N)/elapsed.Seconds()/float64(shards), "records/s/shard")
					b.ReportMetric(float64(first.Sub(start).Milliseconds()), "ms-to-first")
					// The machine is shared: CPU time is steadier than wall time. It is
					// Vigil's alone, but for efo, whose server runs in this process.
					b.ReportMetric(float64(b.N)/cpu.Seconds(), "records/cpu-s")
				})
			}
		})
	}
}

// stored is the records the node's kinesis source stored.
func stored(b *testing.B, p *pipeline.Pipeline) float64 {
	b.Helper()
	families, err := p.Metrics().Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "vigil_sent_events_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" && l.GetValue() == "central" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
