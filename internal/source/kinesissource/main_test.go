package kinesissource_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The two-node test runs its second node as this test binary in a child
	// process, so that it can be killed without a clean stop.
	if os.Getenv(nodeEnv) != "" {
		runChildNode()
		return
	}
	// Idle keep-alive connections of the SDK's and the test's HTTP clients are the
	// transport's, not the source's.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}
