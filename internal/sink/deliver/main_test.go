package deliver_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The engine starts delivery goroutines, a flusher and tasks: none may outlive
// Stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
