package testutil

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
)

// Ports for servers a test starts as processes come from below Linux's ephemeral
// range (32768–60999). A port found by listening on :0 and closing lies inside
// it, where any outgoing connection of any process (a NATS client, an HTTP poll)
// may take it as its source port before the server binds: CI saw that happen.
// Each test process walks the range from its own start, so two packages' tests
// running at once rarely meet, and two calls in one process never return the same
// port.
const (
	portLow  = 20000
	portHigh = 32000
)

// nextPort is the walk's position in this test process (0: not started).
var nextPort atomic.Int64

func freeLoopbackPort() (int, error) {
	nextPort.CompareAndSwap(0, int64(portLow+(os.Getpid()*7919)%(portHigh-portLow)))
	for range portHigh - portLow {
		port := portLow + int(nextPort.Add(1)-portLow)%(portHigh-portLow)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port in %d–%d", portLow, portHigh)
}

// FreePort returns a loopback TCP port that was free a moment ago, outside the
// ephemeral range, and not returned before in this process.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}
