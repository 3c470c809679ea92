package elasticsearchsink

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// The package's OpenSearch node, started by the first test that needs it.
	shared.stop()
	if code == 0 {
		// Idle keep-alive connections of the tests' own http.Get calls to VictoriaLogs
		// and OpenSearch belong to http.DefaultTransport, not to the sink.
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
