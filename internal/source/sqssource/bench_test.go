package sqssource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/sqssource"
)

// captureConfig is the config of a source that only hands its Intake out.
type captureConfig struct{ intake chan component.Intake }

func (c *captureConfig) Validate() error { return nil }

type captureSource struct {
	c  *captureConfig
	in component.Intake
}

func (s *captureSource) Start(context.Context) error { s.c.intake <- s.in; return nil }
func (s *captureSource) Stop(context.Context) error  { return nil }
func (s *captureSource) Ready() bool                 { return true }
func (s *captureSource) Describe() string            { return "capture" }

// realIntake runs a pipeline (embedded JetStream, sync always, as shipped) with a
// source that gives the benchmark its Intake.
func realIntake(b *testing.B) component.Intake {
	b.Helper()
	reg := components.Builtin()
	cc := &captureConfig{intake: make(chan component.Intake, 1)}
	reg.Sources["capture"] = components.SourceFactory{
		NewConfig: func() config.Component { return cc },
		New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
			return &captureSource{c: c.(*captureConfig), in: d.Intake}, nil
		},
	}
	cfg := config.Defaults()
	cfg.DataDir = b.TempDir()
	cfg.Admin.Address = ""
	a := archivesink.NewConfig()
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "queue", Type: "capture", Format: "json", FormatOptions: opts, Settings: cc}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "bench", Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	return <-cc.intake
}

// BenchmarkStoreBatch measures what storing one received batch of 10 messages of
// ~600 bytes costs on the real intake stream (embedded JetStream, sync always):
// as the source does it (one unit, each record with its message's fields), against
// the same unit without fields, and against one unit per message (one stream write
// each). An iteration is one batch; msgs/s is messages stored per second with 4
// receive loops (max_in_flight).
func BenchmarkStoreBatch(b *testing.B) {
	const perBatch, loops = 10, 4
	body := []byte(`{"tid":"m0","summary":"login by alice","category":"authentication","severity":"INFO","hostname":"sso.example",` +
		`"details":{"sourceipaddress":"10.1.2.3","useragent":"Mozilla/5.0 (X11; Linux x86_64) Vigil-bench","path":"/api/v1/items/42?page=2",` +
		`"request_id":"6f3e1d0c-0b9a-4c33-8f2e-5b1a7d9c2e10","result":"SUCCESS","actor":"alice@example.com","org":"example",` +
		`"notes":"padding to a typical SQS event size for a realistic stream write; padding padding padding padding padding"}}`)
	batch := func(n int, fields bool) component.Records {
		u := component.Records{Received: time.Now(), ID: fmt.Sprintf("sqs:%08d", n)}
		for i := range perBatch {
			u.Records = append(u.Records, body)
			if fields {
				id := fmt.Sprintf("6f3e1d0c-0b9a-4c33-%04d-%012d", i, n)
				u.RecordFields = append(u.RecordFields, map[string]string{sqssource.FieldMessageID: id,
					sqssource.FieldSentTimestamp: "2026-12-07T12:00:00.123Z", sqssource.FieldReceiveCount: "1",
					sqssource.FieldAttributes + "origin": "sso.example"})
			}
		}
		return u
	}
	run := func(b *testing.B, store func(ctx context.Context, in component.Intake, n int) error) {
		in := realIntake(b)
		ctx := context.Background()
		var next atomic.Int64
		b.SetParallelism(max(1, loops/runtime.GOMAXPROCS(0))) // `loops` goroutines (RunParallel starts p × GOMAXPROCS)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := store(ctx, in, int(next.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "msgs/s")
	}
	b.Run("batch_with_fields", func(b *testing.B) {
		run(b, func(ctx context.Context, in component.Intake, n int) error { return in.Store(ctx, batch(n, true)) })
	})
	b.Run("batch_without_fields", func(b *testing.B) {
		run(b, func(ctx context.Context, in component.Intake, n int) error { return in.Store(ctx, batch(n, false)) })
	})
	b.Run("unit_per_message", func(b *testing.B) {
		run(b, func(ctx context.Context, in component.Intake, n int) error {
			u := batch(n, true)
			for i, rec := range u.Records {
				if err := in.Store(ctx, component.Records{Received: u.Received, Records: [][]byte{rec},
					Fields: u.RecordFields[i], ID: u.RecordFields[i][sqssource.FieldMessageID]}); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
