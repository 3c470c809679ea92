package syslogsource_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// flakyIntake fails every other Store as unavailable (as a store whose
// acknowledgement was lost would) and records the unit ID of each call.
type flakyIntake struct {
	mu  sync.Mutex
	ids []string
}

func (f *flakyIntake) Store(_ context.Context, recs component.Records) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, recs.ID)
	if len(f.ids)%2 == 1 {
		return fmt.Errorf("test: %w", component.ErrUnavailable)
	}
	return nil
}

func (f *flakyIntake) DeadLetter(context.Context, ...component.Letter) error { return nil }

// TestRetryKeepsUnitID: with SourceDeps.UnitID (a NATS cluster), a batch's retry
// carries the ID of its first try, so the stream drops it if the first try was
// stored after all; the next batch has another ID. Without UnitID, no ID.
func TestRetryKeepsUnitID(t *testing.T) {
	for _, named := range []bool{true, false} {
		t.Run(fmt.Sprint("named=", named), func(t *testing.T) {
			cfg := syslogsource.NewConfig()
			cfg.TCP, cfg.UDP = "127.0.0.1:0", ""
			cfg.BatchMaxWait = 5 * time.Millisecond
			in := &flakyIntake{}
			deps := component.SourceDeps{Name: "syslog", Intake: in, Log: slog.New(slog.DiscardHandler), Metrics: component.NewMetrics(prometheus.NewRegistry())}
			n := 0
			if named {
				deps.UnitID = func() string { n++; return fmt.Sprint("unit-", n) }
			}
			src := syslogsource.New(cfg, deps)
			if err := src.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = src.Stop(context.Background()) })
			c, err := net.Dial("tcp", src.TCPAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 2 {
				fmt.Fprintf(c, "<13>1 - - - - - - message %d\n", i)
				testutil.Eventually(t, 10*time.Second, "the batch stored after a retry", func() bool {
					in.mu.Lock()
					defer in.mu.Unlock()
					return len(in.ids) == 2*(i+1)
				})
			}
			in.mu.Lock()
			defer in.mu.Unlock()
			want := []string{"unit-1", "unit-1", "unit-2", "unit-2"}
			if !named {
				want = []string{"", "", "", ""}
			}
			if fmt.Sprint(in.ids) != fmt.Sprint(want) {
				t.Errorf("unit IDs of the tries %q, want %q", in.ids, want)
			}
		})
	}
}
