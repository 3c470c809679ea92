package pipeline_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestFullDLQDoesNotStopIngestion floods a 1 MiB dead-letter stream with junk while
// good events flow: every good event must be archived and every request answered
// 200, whatever the overflow policy; the letters the policy discarded are counted.
func TestFullDLQDoesNotStopIngestion(t *testing.T) {
	for _, policy := range []string{config.DLQDropNewer, config.DLQDropOlder} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, func(c *config.Config, h *httpsource.Config, _ *archivesink.Config) {
				c.Buffer.DLQ.MaxBytes = 1 << 20
				c.Buffer.DLQ.Overflow = policy
				h.OnMalformed = "dlq"
			})
			p, base := start(t, cfg)
			// Random junk: it must not compress away below the limit.
			junk := func() string {
				b := make([]byte, 500)
				_, _ = rand.Read(b)
				return "{not json " + hex.EncodeToString(b) + "\n"
			}
			const requests, good = 8, 10
			for r := range requests {
				var body strings.Builder
				for i := range 500 {
					body.WriteString(junk())
					if i%50 == 0 {
						fmt.Fprintf(&body, "{\"request\":%d,\"n\":%d}\n", r, i)
					}
				}
				if code, out := post(t, base+"/v1/events/flood", "application/x-ndjson", body.String()); code != 200 {
					t.Fatalf("request %d: %d %v", r, code, out)
				}
			}
			testutil.Eventually(t, 30*time.Second, "every good event archived", func() bool {
				return len(testutil.ArchiveDocs(t, filepath.Join(dir, "archive"))) == requests*good
			})
			discarded := counterValue(t, p, "vigil_dlq_discarded_total", map[string]string{"policy": policy})
			lettered := counterValue(t, p, "vigil_dead_lettered_total", map[string]string{"kind": "source"})
			if lettered != requests*500 || discarded == 0 || discarded >= lettered {
				t.Fatalf("dead-lettered %v, discarded by %s %v: want 4000 and some but not all discarded", lettered, policy, discarded)
			}
			if ok, why := p.Ready(); !ok || !strings.Contains(why, "warning: dead-letter stream") {
				t.Errorf("readyz: %v %q, want ready with a warning about the dead-letter stream", ok, why)
			}
			if fill := gaugeValue(t, p, "vigil_stream_fill_ratio", map[string]string{"stream": "VIGIL_DLQ"}); fill < 0.8 {
				t.Errorf("vigil_stream_fill_ratio{stream=VIGIL_DLQ} = %v, want at least 0.8", fill)
			}
		})
	}
}

// blockingProcessor holds the first event until release is closed.
type blockingProcessor struct{ release chan struct{} }

func (b blockingProcessor) Process(*process.Item) (process.Verdict, error) {
	<-b.release
	return process.Pass, nil
}

// TestReadyzWarnsBeforeIntakeAgesOut: records processing has not finished are
// removed by buffer.intake.max_age; /readyz warns while a quarter of it is left.
func TestReadyzWarnsBeforeIntakeAgesOut(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, func(c *config.Config, _ *httpsource.Config, _ *archivesink.Config) {
		c.Buffer.Intake.MaxAge = 4 * time.Second
		c.Buffer.DuplicateWindow = time.Second
		c.Processing.Processors = []*config.Processor{{Type: "block", Settings: noKeys{}}}
	})
	release := make(chan struct{})
	reg := components.Builtin()
	reg.Processors["block"] = process.Type{Name: "block", NewConfig: func() config.Component { return noKeys{} },
		New: func(config.Component, process.Deps) (process.Processor, error) {
			return blockingProcessor{release}, nil
		}}
	p, base := startWith(t, cfg, reg)
	defer close(release)
	if ok, why := p.Ready(); !ok || why != "ok" {
		t.Fatalf("readyz before: %v %q", ok, why)
	}
	if code, out := post(t, base+"/v1/events/held", "application/json", `{"n":1}`); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	testutil.Eventually(t, 10*time.Second, "a warning about intake max_age", func() bool {
		ok, why := p.Ready()
		return ok && strings.Contains(why, "warning: the oldest unprocessed intake record is removed by buffer.intake.max_age")
	})
}
