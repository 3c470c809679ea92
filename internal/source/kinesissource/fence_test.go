package kinesissource_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/source/kinesissource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// TestCheckpointFenced: when the shard's checkpoint was written by someone else
// since the reader read it (another node that took the shard while this one was
// stalled), the reader's next checkpoint fails its compare-and-set; the reader
// stops, the shard is taken again from the checkpoint as it stands, and the page
// read twice is dropped as a duplicate.
func TestCheckpointFenced(t *testing.T) {
	m := testutil.StartMoto(t)
	s := newStream(t, m.Endpoint(), "fenced", 1)
	s.put(t, 0, 10)
	dir := t.TempDir()
	n := startNode(t, dir, "", s.config(nil))
	waitExactlyOnce(t, 10, dir)

	kv, err := n.p.Stream().JetStream().KeyValue(context.Background(), kinesissource.Bucket("central"))
	if err != nil {
		t.Fatal(err)
	}
	key := "cp.fenced.shardId-000000000000"
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), key, e.Value()); err != nil {
		t.Fatal(err)
	}
	s.put(t, 10, 30)
	testutil.Eventually(t, 30*time.Second, "a failed checkpoint", func() bool {
		v, _ := metric(t, n.p, "vigil_errors_total", map[string]string{"component": "central", "reason": "checkpoint"})
		return v >= 1
	})
	waitExactlyOnce(t, 30, dir)
}
