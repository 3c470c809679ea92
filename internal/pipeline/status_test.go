package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// On one embedded node, Status shows the node itself running everything, the four
// streams with one replica, and the consumers' lag going to zero once the events
// are archived.
func TestStatusOneNode(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), func(c *config.Config, _ *httpsource.Config, _ *archivesink.Config) {
		c.NodeName = "solo"
	})
	p, base := start(t, cfg)
	var body strings.Builder
	for range 50 {
		body.WriteString(`{"message":"status test"}` + "\n")
	}
	if code, _ := post(t, base+"/v1/events/app", "application/x-ndjson", body.String()); code != 200 {
		t.Fatalf("post: %d", code)
	}
	ctx := context.Background()
	testutil.Eventually(t, 20*time.Second, "status shows processing and the sink caught up", func() bool {
		st, err := p.Status(ctx)
		if err != nil || len(st.Consumers) != 2 {
			return false
		}
		for _, c := range st.Consumers {
			if c.Pending != 0 || c.AckPending != 0 || c.AckFloor == 0 {
				return false
			}
		}
		return true
	})
	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].Name != "solo" || !st.Nodes[0].Processing ||
		len(st.Nodes[0].Sources) != 1 || len(st.Nodes[0].Sinks) != 1 {
		t.Fatalf("nodes: %+v", st.Nodes)
	}
	if len(st.Streams) != 4 {
		t.Fatalf("streams: %+v", st.Streams)
	}
	for _, s := range st.Streams {
		if s.Replicas != 1 || s.Leader != "vigil" || len(s.Peers) != 0 { // the embedded server is named vigil
			t.Errorf("stream %s on one embedded server: %+v", s.Name, s)
		}
	}
	if st.Streams[0].Name != "VIGIL_RAW" || st.Streams[0].LastSeq != 1 {
		t.Errorf("intake: %+v", st.Streams[0])
	}
	for _, c := range st.Consumers {
		if c.Sink == "archive" && c.Holder != "solo" {
			t.Errorf("sink consumer run by %q, want solo", c.Holder)
		}
	}
	if len(st.Errors) != 0 {
		t.Errorf("errors: %v", st.Errors)
	}
}
