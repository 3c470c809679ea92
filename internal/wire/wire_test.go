package wire

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/vigil-sec/vigil/internal/component"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		give error
		want error
	}{
		{errors.New("nats: maximum bytes exceeded"), component.ErrFull},
		{errors.New("nats: maximum messages exceeded"), component.ErrFull},
		{errors.New("nats: resource limits exceeded for account"), component.ErrFull},
		{nats.ErrMaxPayload, component.ErrTooLarge},
		{nats.ErrTimeout, component.ErrUnavailable},
		{nats.ErrNoResponders, component.ErrUnavailable},
		{nats.ErrConnectionClosed, component.ErrUnavailable},
	}
	for _, tt := range tests {
		if got := Classify(tt.give); !errors.Is(got, tt.want) {
			t.Errorf("Classify(%v) = %v, want %v", tt.give, got, tt.want)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) must be nil")
	}
}
