package e2e

import (
	"slices"
	"testing"
)

// TestDoubleStoresTellsTheMechanismApart checks the cluster drills' judge of second
// copies (doubleStores): only one Store call stored at two intake positions is let
// through, anything else is unexplained.
func TestDoubleStoresTellsTheMechanismApart(t *testing.T) {
	origins := map[string]string{"A": "intake seq 7 record 0", "B": "intake seq 9 record 0", "C": "intake seq 9 record 1", "D": "intake seq 11 record 1"}
	copies := map[string][]archivedCopy{
		// One Store stored twice: same ingested, positions 7 and 9.
		"c1-r5-e0": {{id: "A", ingested: "t1", file: "f1"}, {id: "B", ingested: "t1", file: "f2"}},
		"c1-r5-e1": {{id: "C", ingested: "t1", file: "f1"}, {id: "D", ingested: "t1", file: "f2"}},
		// Two Store calls (a client resend the load never made): different ingested.
		"c2-r8-e0": {{id: "A", ingested: "t1"}, {id: "B", ingested: "t2"}},
		// A copy whose ID derives from no intake position (another epoch, another rule).
		"c3-r1-e0": {{id: "A", ingested: "t1"}, {id: "X", ingested: "t1"}},
		// Both copies from the same position: processing's own duplicate, not a store.
		"c4-r2-e0": {{id: "B", ingested: "t1"}, {id: "B", ingested: "t1"}},
	}
	tids := []string{"c1-r5-e0", "c1-r5-e1", "c2-r8-e0", "c3-r1-e0", "c4-r2-e0"}
	requests, unexplained, lines := doubleStores(tids, copies, origins)
	if want := []string{"c1-r5"}; !slices.Equal(requests, want) {
		t.Errorf("requests %v, want %v", requests, want)
	}
	if want := []string{"c2-r8-e0", "c3-r1-e0", "c4-r2-e0"}; !slices.Equal(unexplained, want) {
		t.Errorf("unexplained %v, want %v", unexplained, want)
	}
	if len(lines) != 10 {
		t.Errorf("%d lines, want one per copy (10): %v", len(lines), lines)
	}
}
