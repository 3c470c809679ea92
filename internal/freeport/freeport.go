// Package freeport hands out loopback TCP ports for the servers that tests and the
// peer benchmark start as processes.
//
// The ports come from below Linux's ephemeral range (32768–60999). A port found by
// listening on :0 and closing lies inside that range, where any outgoing connection
// of any process (a NATS client, an HTTP poll) may take it as its source port before
// the server binds it: CI saw that happen.
package freeport

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
)

// The range the ports come from.
const (
	Low  = 20000
	High = 32000
)

// Walker walks the range from a start of its own (from the process ID), so that two
// processes walking at once rarely meet, and never returns a port twice until it has
// gone round. The zero Walker is ready; it is safe for concurrent use.
type Walker struct {
	next atomic.Int64 // the last position taken (0: not started)
}

// Take returns a port nothing listened on a moment ago.
func (w *Walker) Take() (int, error) {
	w.next.CompareAndSwap(0, int64(Low+(os.Getpid()*7919)%(High-Low)))
	for range High - Low {
		port := Low + int(w.next.Add(1)-Low)%(High-Low)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port in %d–%d", Low, High)
}
