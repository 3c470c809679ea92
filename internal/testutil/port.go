package testutil

import (
	"fmt"
	"testing"

	"github.com/vigil-sec/vigil/internal/freeport"
)

// ports walks the loopback ports this test process hands out (freeport).
var ports freeport.Walker

// FreePort returns a loopback TCP port that was free a moment ago, below the
// ephemeral range, and not returned before in this process (freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := ports.Take()
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
