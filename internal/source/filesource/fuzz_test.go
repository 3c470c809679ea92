package filesource

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
)

// split runs data through the line splitter in chunks cut at the given points and
// returns the records and dead letters it produced, and the batch's end offset.
func split(t *testing.T, data []byte, multiline bool, cuts []int) (recs, letters []string, end int64) {
	cfg := NewConfig()
	cfg.Paths = []string{"/x"}
	cfg.MaxLineBytes = 64
	cfg.BatchMaxLines = 100000
	cfg.BatchMaxBytes = 900 << 10
	if multiline {
		cfg.Multiline.Start = `^[A-Z]`
	}
	in := &fakeIntake{}
	s, err := New(cfg, component.SourceDeps{Name: "fuzz", Intake: in, Metrics: component.NewMetrics(prometheus.NewRegistry()), DataDir: "/nonexistent-vigil-fuzz"})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Unix(0, 0) }
	tr := &tracked{path: "/x"}
	prev := 0
	for _, c := range append(slices.Clone(cuts), len(data)) {
		if err := s.consume(context.Background(), tr, data[prev:c]); err != nil {
			t.Fatal(err)
		}
		prev = c
	}
	for _, r := range s.batch.records() {
		recs = append(recs, string(r))
	}
	for _, l := range s.batch.letters {
		letters = append(letters, l.Reason+"|"+string(l.Original))
	}
	return recs, letters, s.batch.end
}

// FuzzLineSplitting: file content is untrusted; how it is split into records, cut
// and dead-lettered must not depend on how reads happened to chunk it, and the
// batch's end (the next checkpoint) never passes an unended line.
func FuzzLineSplitting(f *testing.F) {
	f.Add([]byte("a\nb\n"), uint8(1), false)
	f.Add([]byte("2026 start\n\tat x\n\tat y\nNext\nlong "+string(make([]byte, 200))+"\nend"), uint8(7), true)
	f.Add([]byte("\r\n\n\nx\r\n"), uint8(2), false)
	f.Fuzz(func(t *testing.T, data []byte, step uint8, multiline bool) {
		if len(data) > 1<<16 {
			return
		}
		wantRecs, wantLetters, wantEnd := split(t, data, multiline, nil)
		var cuts []int
		for c := int(step%17) + 1; c < len(data); c += int(step%17) + 1 {
			cuts = append(cuts, c)
		}
		recs, letters, end := split(t, data, multiline, cuts)
		if !slices.Equal(recs, wantRecs) || !slices.Equal(letters, wantLetters) || end != wantEnd {
			t.Fatalf("chunked %v: records %q letters %q end %d; whole: %q %q %d", cuts, recs, letters, end, wantRecs, wantLetters, wantEnd)
		}
		for _, r := range recs {
			if len(r) > 64 {
				t.Fatalf("record of %d bytes over max_line_bytes", len(r))
			}
		}
		last := int64(-1)
		for i := len(data) - 1; i >= 0; i-- {
			if data[i] == '\n' {
				last = int64(i)
				break
			}
		}
		if end > last+1 {
			t.Fatalf("end %d past the last newline at %d", end, last)
		}
	})
}
