package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/component"
)

// Publisher starts asynchronous publishes; *stream.Stream implements it.
type Publisher interface {
	// PublishAsync starts a publish; msgID, when set, makes a re-publish within the
	// stream's duplicate window a duplicate the stream drops.
	PublishAsync(msg *nats.Msg, msgID string) (jetstream.PubAckFuture, error)
}

// Out is one message to publish and its message ID (may be empty).
type Out struct {
	Msg *nats.Msg
	ID  string
}

// Pending is a set of publishes in flight.
type Pending struct {
	futures []jetstream.PubAckFuture
}

// Publish starts publishing m; a failure to start is returned classified.
func (p *Pending) Publish(pub Publisher, m *nats.Msg, id string) error {
	f, err := pub.PublishAsync(m, id)
	if err != nil {
		return Classify(err)
	}
	p.futures = append(p.futures, f)
	return nil
}

// Len returns the number of publishes started.
func (p *Pending) Len() int { return len(p.futures) }

// Wait waits until the stream acknowledged every publish, and returns the first
// failure classified, or component.ErrUnavailable when ctx ends first. Pending is
// empty afterwards.
func (p *Pending) Wait(ctx context.Context) error {
	defer func() { clear(p.futures); p.futures = p.futures[:0] }()
	var first error
	for _, f := range p.futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = Classify(err)
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: no acknowledgement: %v", component.ErrUnavailable, ctx.Err())
		}
	}
	return first
}

// PublishAll publishes msgs and waits until the stream acknowledged all of them; on
// an error some may be stored, so the caller retries the whole set (with message IDs
// the retry is deduplicated).
func PublishAll(ctx context.Context, pub Publisher, msgs ...Out) error {
	var p Pending
	for _, m := range msgs {
		if err := p.Publish(pub, m.Msg, m.ID); err != nil {
			_ = p.Wait(ctx)
			return err
		}
	}
	return p.Wait(ctx)
}

// Classify maps a publish error to component.ErrFull, component.ErrTooLarge or
// component.ErrUnavailable, keeping the detail.
func Classify(err error) error {
	if err == nil || errors.Is(err, component.ErrFull) || errors.Is(err, component.ErrUnavailable) || errors.Is(err, component.ErrTooLarge) {
		return err
	}
	msg := err.Error()
	for _, full := range []string{"maximum bytes exceeded", "maximum messages exceeded", "resource limits exceeded", "insufficient resources"} {
		if strings.Contains(msg, full) {
			return fmt.Errorf("%w: %v", component.ErrFull, err)
		}
	}
	if strings.Contains(msg, "maximum payload exceeded") || errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("%w: %v", component.ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %v", component.ErrUnavailable, err)
}
