package freeport

import (
	"fmt"
	"net"
	"testing"
)

func TestTakeGivesDistinctBindablePortsBelowTheEphemeralRange(t *testing.T) {
	var w Walker
	seen := map[int]bool{}
	for range 50 {
		port, err := w.Take()
		if err != nil {
			t.Fatal(err)
		}
		if port < Low || port >= High {
			t.Fatalf("port %d outside %d–%d", port, Low, High)
		}
		if seen[port] {
			t.Fatalf("port %d returned twice", port)
		}
		seen[port] = true
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		ln.Close()
	}
}

func TestTakeSkipsPortsInUse(t *testing.T) {
	var w Walker
	first, err := w.Take()
	if err != nil {
		t.Fatal(err)
	}
	// Hold the next port the walk would reach: Take must pass over it. (If another
	// program holds it already, it is just as busy.)
	if busy, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first+1)); err == nil {
		defer busy.Close()
	}
	second, err := w.Take()
	if err != nil {
		t.Fatal(err)
	}
	if second == first+1 {
		t.Fatalf("Take returned port %d, which is in use", second)
	}
}
