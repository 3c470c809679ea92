package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/pipeline"
)

// vigil status asks a running node's admin API and prints streams, nodes and
// consumers; without the token it is refused; --json prints the same as JSON.
func TestStatusCommand(t *testing.T) {
	_, _, adminURL, _ := dlqNode(t)
	if code, _, errOut := runCLI(t, "", "status", "--admin", adminURL); code != 1 || !strings.Contains(errOut, "401") && !strings.Contains(strings.ToLower(errOut), "token") {
		t.Fatalf("without the token: exit %d, %s", code, errOut)
	}
	t.Setenv(tokenEnv, testToken)
	code, out, errOut := runCLI(t, "", "status", "--admin", adminURL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"VIGIL_RAW", "VIGIL_EVENTS", "VIGIL_DLQ", "VIGIL_AGG", "processing", "sink-archive", "every process node", " all "} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCLI(t, "", "status", "--admin", adminURL, "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var st pipeline.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(st.Streams) != 4 || len(st.Consumers) != 2 || len(st.Nodes) != 1 {
		t.Fatalf("--json: %+v", st)
	}
}

// printStatus shows a follower's state: current, lagging by N, or offline.
func TestPrintStatusFollowers(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	st := &pipeline.Status{
		Streams: []pipeline.StreamStatus{{Name: "VIGIL_RAW", Replicas: 3, Leader: "n1", Peers: []pipeline.ReplicaInfo{
			{Server: "n2", Current: true, Active: 200 * time.Millisecond},
			{Server: "n3", Lag: 42, Active: 3 * time.Second},
		}}, {Name: "VIGIL_EVENTS", Replicas: 3, Leader: "n2", Peers: []pipeline.ReplicaInfo{{Server: "n3", Offline: true}}}},
		Nodes: []pipeline.NodeInfo{{Name: "process-1", ID: "ab", Role: "process", Processing: true, Sinks: []string{"archive"},
			Heartbeat: now.Add(-2 * time.Second)}},
		Consumers: []pipeline.ConsumerStatus{{Name: "sink-archive", Stream: "VIGIL_EVENTS", Sink: "archive", Holder: "process-1", Pending: 7}},
		Errors:    []string{"VIGIL_DLQ: no leader"},
	}
	var b strings.Builder
	printStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{"n2 (current, seen 200ms ago)", "n3 (lag 42, seen 3s ago)", "n3 (offline", "2s ago", "process-1", "warning: VIGIL_DLQ: no leader"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}
