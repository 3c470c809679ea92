package event

import (
	"math"
	"regexp"
	"testing"
)

func TestDeriveID(t *testing.T) {
	base := Origin{Epoch: 1700000000000000000, Seq: 42, Index: 3}
	id := DeriveID(base, 0)
	if len(id) != IDLen {
		t.Fatalf("len(%q) = %d, want %d", id, len(id), IDLen)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{20}$`).MatchString(id) {
		t.Errorf("%q is not URL-safe base64", id)
	}
	if DeriveID(base, 0) != id {
		t.Error("not deterministic")
	}
	// Pinned so that a change of the derivation (which would break deduplication of
	// replays against documents already indexed) is caught.
	if want := DeriveID(Origin{Epoch: 1, Seq: 2, Index: 3}, 4); want != "YIvRyPkTzx8_fXyRHXFJ" {
		t.Errorf("DeriveID({1,2,3},4) = %q, want %q", want, "YIvRyPkTzx8_fXyRHXFJ")
	}
	variants := map[string]string{"base": id}
	add := func(name string, o Origin, sub uint32) {
		v := DeriveID(o, sub)
		for other, w := range variants {
			if w == v {
				t.Errorf("%s and %s give the same ID %q", name, other, v)
			}
		}
		variants[name] = v
	}
	add("epoch", Origin{Epoch: base.Epoch + 1, Seq: base.Seq, Index: base.Index}, 0)
	add("seq", Origin{Epoch: base.Epoch, Seq: base.Seq + 1, Index: base.Index}, 0)
	add("index", Origin{Epoch: base.Epoch, Seq: base.Seq, Index: base.Index + 1}, 0)
	add("sub", base, 1)
	add("negative epoch", Origin{Epoch: -base.Epoch, Seq: base.Seq, Index: base.Index}, 0)
	// Fields are fixed-width, so shifting a value between fields changes the ID.
	add("swap", Origin{Epoch: base.Epoch, Seq: uint64(base.Index), Index: uint32(base.Seq)}, 0)
	add("max", Origin{Epoch: math.MaxInt64, Seq: math.MaxUint64, Index: math.MaxUint32}, math.MaxUint32)
	add("zero", Origin{}, 0)
}

func TestDeriveIDNoCollisions(t *testing.T) {
	seen := map[string]bool{}
	for seq := uint64(0); seq < 50; seq++ {
		for idx := uint32(0); idx < 20; idx++ {
			for sub := uint32(0); sub < 5; sub++ {
				id := DeriveID(Origin{Epoch: 7, Seq: seq, Index: idx}, sub)
				if seen[id] {
					t.Fatalf("collision at %d/%d/%d", seq, idx, sub)
				}
				seen[id] = true
			}
		}
	}
}

func TestAppendIDMatchesDeriveID(t *testing.T) {
	o := Origin{Epoch: 1700000000123456789, Seq: 42, Index: 7}
	prefix := []byte("x")
	for sub := range uint32(5) {
		got := AppendID(prefix, o, sub)
		if string(got[:1]) != "x" || string(got[1:]) != DeriveID(o, sub) || len(got)-1 != IDLen {
			t.Fatalf("AppendID(%d) = %q, DeriveID = %q", sub, got, DeriveID(o, sub))
		}
	}
	buf := make([]byte, 0, IDLen)
	if n := testing.AllocsPerRun(100, func() { _ = AppendID(buf, o, 1) }); n != 0 {
		t.Fatalf("AppendID into room: %v allocations, want 0", n)
	}
}
