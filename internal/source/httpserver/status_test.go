package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/vigil-sec/vigil/internal/component"
)

func TestClassify(t *testing.T) {
	full := Failure{Status: http.StatusTooManyRequests, RetryAfter: true, Reason: "stream_full",
		Message: "the intake stream is full; retry later"}
	tooLarge := Failure{Status: http.StatusRequestEntityTooLarge, Reason: "too_large",
		Message: "a record is larger than the intake stream accepts"}
	unavailable := Failure{Status: http.StatusServiceUnavailable, RetryAfter: true, Reason: "stream_unavailable",
		Message: "the intake stream is unavailable; retry later"}
	tests := []struct {
		name string
		give error
		want Failure
	}{
		{"full", component.ErrFull, full},
		{"full, wrapped", fmt.Errorf("publish: %w", component.ErrFull), full},
		{"dead letter full", fmt.Errorf("dlq: %w", component.ErrFull), full},
		{"too large", component.ErrTooLarge, tooLarge},
		{"too large, wrapped", fmt.Errorf("publish: %w", component.ErrTooLarge), tooLarge},
		{"unavailable", component.ErrUnavailable, unavailable},
		{"unavailable, wrapped", fmt.Errorf("publish: %w", component.ErrUnavailable), unavailable},
		{"unavailable with the context's error", fmt.Errorf("%w: %v", component.ErrUnavailable, context.Canceled), unavailable},
		{"canceled", context.Canceled, unavailable},
		{"deadline", fmt.Errorf("publish: %w", context.DeadlineExceeded), unavailable},
		{"unexpected", errors.New("boom"), unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.give); got != tt.want {
				t.Errorf("Classify(%v) = %+v, want %+v", tt.give, got, tt.want)
			}
		})
	}
}
