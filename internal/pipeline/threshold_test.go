package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// thresholdConfig has the brute-force rule: ≥ 10 failed ConsoleLogin per
// source.ip in 10 minutes.
const thresholdConfig = `
data_dir: %s
admin: {address: ""}
%s
sources:
  web:
    type: http
    address: 127.0.0.1:0
    format: json
    path_dataset: true
processing:
  processors:
    - type: threshold
      name: console-brute-force
      if: 'event.action == "ConsoleLogin" && event.outcome == "failure"'
      group_by: [source.ip]
      window: 10m
      aggregate: {count: count}
      condition: "count >= 10"
      level: high
      lease_ttl: 2s
      snapshot_interval: 200ms
sinks:
  archive:
    type: file_archive
    path: %s
    max_age: 200ms
    inputs: ["*"]
`

func thresholdCfg(t *testing.T, dir, buffer string) *config.Config {
	t.Helper()
	file := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, thresholdConfig, dir, buffer, filepath.Join(dir, "archive")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func postLogins(t *testing.T, base string, from, to int, at time.Time) {
	t.Helper()
	for i := from; i < to; i++ {
		body := fmt.Sprintf(`{"@timestamp":%q,"event":{"action":"ConsoleLogin","outcome":"failure"},"source":{"ip":"203.0.113.7"},"n":%d}`,
			at.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), i)
		if code, out := post(t, base+"/v1/events/aws.cloudtrail", "application/json", body); code != 200 {
			t.Fatalf("%d %v", code, out)
		}
	}
	// Noise: successes and another address never count.
	if code, _ := post(t, base+"/v1/events/aws.cloudtrail", "application/json",
		`{"event":{"action":"ConsoleLogin","outcome":"success"},"source":{"ip":"203.0.113.7"}}`); code != 200 {
		t.Fatal(code)
	}
}

func alerts(t *testing.T, archive string) []map[string]any {
	var out []map[string]any
	for _, d := range testutil.ArchiveDocs(t, archive) {
		if testutil.Field(d, "event.kind") == "alert" {
			out = append(out, d)
		}
	}
	return out
}

// settle waits until the archive holds want events in all, then a little longer
// for anything that should not be there.
func settle(t *testing.T, archive string, want int) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d documents archived", want), func() bool {
		return len(testutil.ArchiveDocs(t, archive)) >= want
	})
	time.Sleep(time.Second) // several archive rotations: nothing more may arrive
}

func checkOneAlert(t *testing.T, archive string) {
	t.Helper()
	got := alerts(t, archive)
	if len(got) != 1 {
		t.Fatalf("%d alerts, want exactly 1: %v", len(got), got)
	}
	a := got[0]
	for path, want := range map[string]any{"event.dataset": "vigil.alert", "rule.name": "console-brute-force",
		"rule.id": "console-brute-force", "event.severity": 73.0, "source.ip": "203.0.113.7",
		"threshold.values.count": 10.0, "threshold.level": "high"} {
		if got := testutil.Field(a, path); got != want {
			t.Errorf("%s = %v (%T), want %v", path, got, got, want)
		}
	}
	if ids, _ := testutil.Field(a, "threshold.event_ids").([]any); len(ids) != 10 {
		t.Errorf("threshold.event_ids: %v, want 10 ids", testutil.Field(a, "threshold.event_ids"))
	}
	if testutil.Field(a, "threshold.window.start") == nil || testutil.Field(a, "event.id") == nil {
		t.Errorf("alert without window or id: %v", a)
	}
}

func TestThresholdAlert(t *testing.T) {
	dir := t.TempDir()
	p0, base := start(t, thresholdCfg(t, dir, ""))
	at := time.Now().Add(-time.Minute)
	postLogins(t, base, 0, 15, at) // 15 failures: one alert, the rest suppressed
	archive := filepath.Join(dir, "archive")
	settle(t, archive, 15+1+1)
	checkOneAlert(t, archive)
	if n := counterValue(t, p0, "vigil_threshold_alerts_total", map[string]string{"rule": "console-brute-force"}); n != 1 {
		t.Errorf("vigil_threshold_alerts_total = %v, want 1", n)
	}
}

// TestThresholdRestart stops the node mid-window: the count survives in the
// aggregator's snapshot, and the alert fires once after the restart.
func TestThresholdRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := thresholdCfg(t, dir, "")
	archive := filepath.Join(dir, "archive")
	at := time.Now().Add(-time.Minute)

	p, base := start(t, cfg)
	postLogins(t, base, 0, 6, at)
	settle(t, archive, 7)
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(alerts(t, archive)); n != 0 {
		t.Fatalf("%d alerts after 6 failures", n)
	}

	_, base = start(t, thresholdCfg(t, dir, ""))
	postLogins(t, base, 6, 12, at)
	settle(t, archive, 14+1)
	checkOneAlert(t, archive)
}

// TestThresholdTwoNodes runs two nodes on one external nats-server. Both take
// half of the failures; the node holding the rule's lease is stopped without
// saving or releasing it (as by kill -9), and the other takes over after the lease
// expires, replays and raises the alert exactly once.
func TestThresholdTwoNodes(t *testing.T) {
	ns := startNATS(t, t.TempDir(), testutil.FreePort(t))
	buffer := fmt.Sprintf("buffer: {type: nats, urls: [%q], ack_wait: 5s, publish_timeout: 2s}", ns.url)
	dirA, dirB := t.TempDir(), t.TempDir()
	a, baseA := start(t, thresholdCfg(t, dirA, buffer))
	b, baseB := start(t, thresholdCfg(t, dirB, buffer))
	at := time.Now().Add(-time.Minute)
	postLogins(t, baseA, 0, 3, at)
	postLogins(t, baseB, 3, 6, at)

	var leader, other *pipeline.Pipeline
	otherBase := ""
	testutil.Eventually(t, 20*time.Second, "one node leads the rule", func() bool {
		la, lb := a.Aggregators()[0].Leader(), b.Aggregators()[0].Leader()
		switch {
		case la && !lb:
			leader, other, otherBase = a, b, baseB
		case lb && !la:
			leader, other, otherBase = b, a, baseA
		default:
			return false
		}
		return true
	})
	// Let the leader consume and snapshot some of the samples, then kill it.
	time.Sleep(500 * time.Millisecond)
	leader.Aggregators()[0].Crash()
	if err := leader.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	postLogins(t, otherBase, 6, 12, at)
	testutil.Eventually(t, 30*time.Second, "the other node takes the lease over", func() bool {
		return other.Aggregators()[0].Leader()
	})
	// Both nodes archive what they consume; alerts are in the shared stream.
	testutil.Eventually(t, 30*time.Second, "an alert", func() bool {
		return len(alerts(t, filepath.Join(dirA, "archive")))+len(alerts(t, filepath.Join(dirB, "archive"))) >= 1
	})
	time.Sleep(2 * time.Second)
	n := len(alerts(t, filepath.Join(dirA, "archive"))) + len(alerts(t, filepath.Join(dirB, "archive")))
	if n != 1 {
		t.Fatalf("%d alerts, want exactly 1", n)
	}
}
