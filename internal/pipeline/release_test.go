package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// releasingSink releases the documents of every other batch at once (after reading
// them) and keeps those of the others, unreleased, to check later that nothing wrote
// into them.
type releasingSink struct {
	mu       sync.Mutex
	batches  int
	seen     map[int]int             // document "n" → times delivered
	released map[unsafe.Pointer]bool // memory of the released batches
	reused   int                     // batches decoded into released memory
	kept     [][]byte                // Docs of the unreleased batches
	copies   [][]byte                // what they held when they came
}

func (s *releasingSink) Start(context.Context) error { return nil }
func (s *releasingSink) Stop(context.Context) error  { return nil }
func (s *releasingSink) Describe() string            { return "releases every other batch" }
func (s *releasingSink) Consume(_ context.Context, b *component.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSuffix(string(b.Docs), "\n"), "\n") {
		var doc struct{ N int }
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			b.Done(fmt.Errorf("batch %d: %w: %q", s.batches, err, line))
			return nil
		}
		s.seen[doc.N]++
	}
	p := unsafe.Pointer(unsafe.SliceData(b.Docs))
	if s.released[p] {
		s.reused++
	}
	if s.batches%2 == 0 {
		s.released[p] = true
		b.Release()
		if b.Docs != nil {
			b.Done(fmt.Errorf("Docs still set after Release"))
			return nil
		}
		b.Release() // a second call does nothing
	} else {
		s.kept = append(s.kept, b.Docs)
		s.copies = append(s.copies, bytes.Clone(b.Docs))
	}
	s.batches++
	b.Done(nil)
	return nil
}

// TestSinkReleaseReusesMemory: the memory of a batch the sink released takes a later
// batch, the memory of one it did not release is never written again, and every
// document arrives once, intact.
func TestSinkReleaseReusesMemory(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, func(c *config.Config, _ *httpsource.Config, _ *archivesink.Config) {})
	cfg.Sinks = append(cfg.Sinks, &config.Sink{Name: "releasing", Type: "releasing", Inputs: []string{"*"}, Settings: noKeys{}})
	reg := components.Builtin()
	snk := &releasingSink{seen: map[int]int{}, released: map[unsafe.Pointer]bool{}}
	reg.Sinks["releasing"] = components.SinkFactory{NewConfig: func() config.Component { return noKeys{} },
		New: func(config.Component, component.SinkDeps) (component.Sink, error) { return snk, nil }}
	_, base := startWith(t, cfg, reg)
	const posts, perPost = 40, 50
	for i := range posts {
		var body strings.Builder
		for j := range perPost {
			fmt.Fprintf(&body, "{\"n\":%d,\"pad\":%q}\n", i*perPost+j, strings.Repeat("x", 40+i))
		}
		if code, out := post(t, base+"/v1/events/app", "application/x-ndjson", body.String()); code != 200 {
			t.Fatalf("post %d: %d %v", i, code, out)
		}
	}
	testutil.Eventually(t, 60*time.Second, "every document delivered", func() bool {
		snk.mu.Lock()
		defer snk.mu.Unlock()
		return len(snk.seen) == posts*perPost
	})
	snk.mu.Lock()
	defer snk.mu.Unlock()
	for n, times := range snk.seen {
		if n < 0 || n >= posts*perPost || times != 1 {
			t.Errorf("document %d delivered %d times", n, times)
		}
	}
	for i := range snk.kept {
		if !bytes.Equal(snk.kept[i], snk.copies[i]) {
			t.Fatalf("the documents of unreleased batch %d changed after it was handed over", i)
		}
	}
	// Each unreleased batch can take the memory the batch before it released.
	if snk.reused < snk.batches/4 {
		t.Errorf("%d of %d batches were decoded into released memory, want at least a quarter", snk.reused, snk.batches)
	}
	t.Logf("%d batches, %d decoded into released memory", snk.batches, snk.reused)
}
