package pipeline

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/wire"
)

func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	return out
}

func openLog(t *testing.T, path string, epoch int64) *deliveredLog {
	t.Helper()
	d, err := openDeliveredLog(path, epoch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestDeliveredLogEpochs: sequences count only in their events stream epoch, while
// message IDs outlive it; records of earlier versions and torn lines are dropped.
func TestDeliveredLogEpochs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sinks", "s.delivered")
	d := openLog(t, path, 100)
	if err := d.Add([]delivery{{100, 1, "7:1:web:0"}, {100, 2, ""}, {100, 3, "7:2:web:0"}}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// An earlier version's line and a torn one.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("42\n100 4")
	f.Close()

	d = openLog(t, path, 100)
	for _, q := range []uint64{1, 2, 3} {
		if !d.Has(q) {
			t.Errorf("same epoch: sequence %d not remembered", q)
		}
	}
	if d.Has(4) || d.Has(42) || !d.HasID("7:1:web:0") || d.HasID("") {
		t.Errorf("same epoch: Has(4)=%v Has(42)=%v HasID=%v HasID(\"\")=%v", d.Has(4), d.Has(42), d.HasID("7:1:web:0"), d.HasID(""))
	}
	d.Close()
	if got := lines(t, path); len(got) != 3 {
		t.Errorf("file after start %q: want the three records only", got)
	}

	// The events stream was recreated: its sequence 1 is another batch.
	d = openLog(t, path, 200)
	if d.Has(1) || d.Has(2) || d.Has(3) {
		t.Error("a former epoch's sequences count in the new one")
	}
	if !d.HasID("7:1:web:0") || !d.HasID("7:2:web:0") {
		t.Error("message IDs forgotten with the events stream")
	}
	if err := d.Add([]delivery{{200, 1, "7:3:web:0"}}); err != nil {
		t.Fatal(err)
	}
	if !d.Has(1) {
		t.Error("the new epoch's sequence 1 not remembered")
	}
	want := []string{"100 1 7:1:web:0", "100 3 7:2:web:0", "200 1 7:3:web:0"}
	if got := lines(t, path); !slices.Equal(got, want) {
		t.Errorf("file %q, want %q", got, want)
	}
}

// TestDeliveredLogPrune: a record goes when neither its sequence nor its message
// ID can come back; Note is seen at once and written by a later Add.
func TestDeliveredLogPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.delivered")
	d := openLog(t, path, 100)
	if err := d.Add([]delivery{{100, 1, "7:1:web:0"}, {100, 2, "7:5:web:0"}, {100, 3, ""}, {90, 9, "6:1:web:0"}}); err != nil {
		t.Fatal(err)
	}
	d.Note(delivery{100, 4, "7:6:web:0"})
	if !d.Has(4) || !d.HasID("7:6:web:0") {
		t.Error("a noted delivery is not seen")
	}
	// Sequences up to 3 acknowledged; IDs of intake epoch 7 up to 5 processed.
	keep := func(id string) bool {
		e, q, ok := wire.ParseEventsID(id)
		return ok && e == 7 && q > 5
	}
	if err := d.Prune(3, keep); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 1 || !d.Has(4) || d.HasID("7:5:web:0") || d.HasID("6:1:web:0") || d.Has(1) {
		t.Errorf("after pruning: %d records, Has(4)=%v", d.Len(), d.Has(4))
	}
	// An ID still needed keeps its record past the sequence floor.
	if err := d.Prune(10, func(id string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if !d.HasID("7:6:web:0") {
		t.Error("an ID still needed was pruned")
	}
	if err := d.Add([]delivery{{100, 5, ""}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"100 4 7:6:web:0", "100 5 -"}
	if got := lines(t, path); !slices.Equal(got, want) {
		t.Errorf("file %q, want %q", got, want)
	}
}

type floorStep struct {
	name      string
	obs       observation
	mark      *mark
	wantSeq   uint64
	wantFloor uint64
}

// TestFloors walks the prune ticks through a lagging sink and a caught-up one.
func TestFloors(t *testing.T) {
	steps := []floorStep{
		{name: "first tick: nothing trusted yet", obs: observation{ackFloor: 10}, mark: &mark{intake: 5, events: 20}},
		{name: "the sink has not reached the mark", obs: observation{ackFloor: 15}, mark: &mark{intake: 8, events: 30},
			wantSeq: 10},
		{name: "this observation passes mark 1, trusted next tick", obs: observation{ackFloor: 25}, mark: &mark{intake: 9, events: 40},
			wantSeq: 15},
		{name: "mark 1 usable", obs: observation{ackFloor: 26}, mark: nil,
			wantSeq: 25, wantFloor: 5},
		{name: "no processing consumer this time", obs: observation{ackFloor: 26, caughtUp: true}, mark: &mark{intake: 12, events: 50},
			wantSeq: 26, wantFloor: 5},
		{name: "caught up: every mark before it usable", obs: observation{ackFloor: 26}, mark: nil,
			wantSeq: 26, wantFloor: 9},
		{name: "the mark taken with the caught-up observation is not; the floor stays", obs: observation{ackFloor: 60}, mark: nil,
			wantSeq: 26, wantFloor: 9},
		{name: "mark 4 passed", obs: observation{ackFloor: 60}, mark: nil,
			wantSeq: 60, wantFloor: 12},
	}
	var f floors
	for _, st := range steps {
		gotSeq, gotFloor := f.tick(st.obs, st.mark)
		if gotSeq != st.wantSeq || gotFloor != st.wantFloor {
			t.Errorf("%s: floors %d, %d; want %d, %d", st.name, gotSeq, gotFloor, st.wantSeq, st.wantFloor)
		}
	}
}

// TestFloorsBounded: a sink that never catches up keeps at most maxMarks marks, and
// the floors never go back.
func TestFloorsBounded(t *testing.T) {
	var f floors
	var lastSeq, lastFloor uint64
	for i := range uint64(5000) {
		// The sink lags 2000 ticks behind the marks.
		seq, floor := f.tick(observation{ackFloor: max(i, 2000) - 2000}, &mark{intake: i, events: i})
		if seq < lastSeq || floor < lastFloor {
			t.Fatalf("tick %d: floors went back: %d, %d after %d, %d", i, seq, floor, lastSeq, lastFloor)
		}
		lastSeq, lastFloor = seq, floor
		if len(f.marks) > maxMarks {
			t.Fatalf("tick %d: %d marks", i, len(f.marks))
		}
	}
	if lastFloor < 2000 || lastFloor > 2999 {
		t.Errorf("intake floor %d after 5000 ticks lagging 2000: want it between 2000 and 2999", lastFloor)
	}
}
