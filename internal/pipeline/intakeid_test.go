package pipeline_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/stream"
	"github.com/vigil-sec/vigil/internal/wire"
)

// TestIntakeRecordsID: a unit stored twice under the same ID is stored once, in
// each of its batches, and its line numbers follow each batch.
func TestIntakeRecordsID(t *testing.T) {
	p, _ := start(t, testConfig(t, t.TempDir(), nil))
	in := p.Intake("web", "json")
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), event.MaxBatchBytes/2+1)
	recs := component.Records{Records: [][]byte{big, big, []byte(`{"a":1}`)}, ID: "unit-1",
		Fields: map[string]string{"k": "v"}, Lines: []int{1, 2, 4}, LineField: "log.line"}
	for range 2 {
		if err := in.Store(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	s, err := p.Stream().JetStream().Stream(ctx, stream.IntakeStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("intake stream holds %d messages, want 2 (one unit of 2 batches, stored twice)", n)
	}
	var lines []string
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		raw := wire.ReadRaw(m.Subject, m.Header, m.Data, m.Time)
		if raw.Fields["k"] != "v" || raw.LineField != "log.line" {
			t.Errorf("batch %d: fields %v, line field %q", seq, raw.Fields, raw.LineField)
		}
		lines = append(lines, wire.FormatLines(raw.Lines))
	}
	if lines[0] != "1-1" || lines[1] != "2-2,4-4" {
		t.Errorf("line runs per batch: %v", lines)
	}
}
